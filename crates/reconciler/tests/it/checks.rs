//! The internal cross-checks (业务数据核对) on real stores: clean books pass every check, and
//! each check finds an inconsistency of its own kind planted behind the payment core's back.

use std::sync::atomic::Ordering;

use executor::{NewParty, PartyKind, WalletTransferRequest};
use ledger::apply::Command;
use ledger::model::{BalanceRule, Movement, NewAccount, NewTransfer, TransferAction};
use ledger::{AccountId, BoundedText, BusinessCode, ChartCode, TransferId};
use payments::booking::{BUSINESS_CODE_PAYMENT, BUSINESS_CODE_WALLET_TRANSFER};
use payments::chart::{wallet_account_id, CUSTOMER_WALLETS};
use payments::topup::BUSINESS_CODE_TOPUP;
use reconciler::CheckRun;

use crate::{amount, cny, world, Backend, World, TENANT};

fn failing(run: &CheckRun) -> Vec<(&str, Vec<&str>)> {
    run.checks
        .iter()
        .filter(|check| !check.ok)
        .map(|check| {
            (check.name.as_str(), check.findings.iter().map(|f| f.subject.as_str()).collect())
        })
        .collect()
}

fn transfer(
    id: u128,
    debit: AccountId,
    credit: AccountId,
    code: BusinessCode,
    order: &str,
) -> NewTransfer {
    NewTransfer {
        id: TransferId::new(id).unwrap(),
        action: TransferAction::Post(Movement {
            debit_account_id: debit,
            credit_account_id: credit,
            asset: cny(),
            amount: amount(1),
        }),
        business_code: code,
        order_ref: BoundedText::new(order).unwrap(),
    }
}

async fn book(w: &World, commands: Vec<Command>) {
    for outcome in w.ledger().execute(commands).await.unwrap() {
        if let ledger::Outcome::Transfers(results) = outcome {
            assert!(results.iter().all(Result::is_ok), "{results:?}");
        }
    }
}

async fn each_check_finds_its_kind(backend: &Backend) {
    let w = world(backend).await;
    let bob = NewParty {
        kind: PartyKind::Customer,
        id: "bob".into(),
        name: "Bob".into(),
        assets: vec![cny()],
        fee_bps: 0,
        settle_after_days: 0,
        unsettled_layout: Default::default(),
    };
    w.executor.open_party(TENANT, bob).await.unwrap();
    let topup = w.topup("t1", "card-1", 10_000).await;
    // A merchant paid and settled at once (T+0): its settled takings are a settlement's.
    let shop = NewParty {
        kind: PartyKind::Merchant,
        id: "shop".into(),
        name: "Shop".into(),
        assets: vec![cny()],
        fee_bps: 0,
        settle_after_days: 0,
        unsettled_layout: Default::default(),
    };
    w.executor.open_party(TENANT, shop).await.unwrap();
    let payment = executor::PaymentRequest {
        reference: "p1".into(),
        customer: "alice".into(),
        merchant: "shop".into(),
        asset: cny(),
        amount: amount(2_500),
        points: None,
        pay_from: None,
        authorize_for_secs: None,
    };
    let paid = w.executor.create_payment(TENANT, payment).await.unwrap();
    assert_eq!(paid.record.order.status(), "succeeded");
    let paid = paid.record.id().to_string();
    // Settlement takes payments made before now.
    w.clock.0.fetch_add(1, Ordering::Relaxed);
    assert_eq!(w.executor.settle_all().await, 1, "one settlement");
    // Bob's wallet is empty: his transfer fails, and moves nothing.
    let request = WalletTransferRequest {
        reference: "gift".into(),
        from: "bob".into(),
        to: "alice".into(),
        asset: cny(),
        amount: amount(5),
    };
    let failed = w.executor.create_wallet_transfer(TENANT, request).await.unwrap();
    assert_eq!(failed.record.order.status(), "failed");
    let failed = failed.record.id().to_string();

    let clean = w.reconciler.cross_check("ops").await.unwrap();
    assert!(clean.ok, "{:?}", failing(&clean));
    assert_eq!(clean.checks.len(), reconciler::checks::CHECKS.len());
    let journal = clean.checks.iter().find(|c| c.name == "journal_verifies").unwrap();
    assert!(journal.examined > 0, "{clean:?}");

    // Behind the payment core's back:
    let alice = wallet_account_id(&executor::party_key(TENANT, "alice"), cny());
    let bob = wallet_account_id(&executor::party_key(TENANT, "bob"), cny());
    let stray = AccountId::new(0x5eed).unwrap();
    let suspense_of_bank =
        payments::chart::Internal::ReconSuspense(channels::ChannelId::new("bank_a").unwrap());
    let settled =
        payments::chart::merchant_account_id(&executor::party_key(TENANT, "shop"), cny(), true);
    book(
        &w,
        vec![
            // a payment's code on a transfer no order made;
            Command::Transfers(vec![transfer(
                9_001,
                alice,
                bob,
                BUSINESS_CODE_PAYMENT,
                "pay_nosuchorder",
            )]),
            // one more posting under the succeeded payment's id than it was booked with;
            Command::Transfers(vec![transfer(9_007, alice, bob, BUSINESS_CODE_PAYMENT, &paid)]),
            // money moved under the failed order's id;
            Command::Transfers(vec![transfer(
                9_002,
                alice,
                bob,
                BUSINESS_CODE_WALLET_TRANSFER,
                &failed,
            )]),
            // a hold under the succeeded top-up's id, left pending;
            Command::Transfers(vec![NewTransfer {
                id: TransferId::new(9_003).unwrap(),
                action: TransferAction::Pending {
                    movement: Movement {
                        debit_account_id: alice,
                        credit_account_id: bob,
                        asset: cny(),
                        amount: amount(1),
                    },
                    timeout_secs: None,
                },
                business_code: BUSINESS_CODE_TOPUP,
                order_ref: BoundedText::new(topup.as_str()).unwrap(),
            }]),
            // an account on the wallet line that is no customer's wallet, holding money.
            Command::OpenAccount(NewAccount {
                id: stray,
                asset: cny(),
                chart_code: ChartCode(CUSTOMER_WALLETS.code),
                rule: BalanceRule::Unbounded,
                metadata: BoundedText::default(),
                layout: Default::default(),
            }),
            Command::Transfers(vec![transfer(9_004, alice, stray, BusinessCode(0), "")]),
            // money into a merchant's settled takings that no settlement put there;
            Command::Transfers(vec![transfer(9_005, alice, settled, BusinessCode(0), "")]),
            // money in a channel's reconciliation suspense that no break holds.
            Command::OpenAccount(payments::chart::internal_account(&suspense_of_bank, cny())),
            Command::Transfers(vec![transfer(
                9_006,
                alice,
                payments::chart::internal_account_id(&suspense_of_bank, cny()),
                BusinessCode(0),
                "",
            )]),
        ],
    )
    .await;
    // And an order stuck: the bank's answer to it is lost, and nobody asks.
    let stuck = w.topup("t2", "lost", 700).await;
    w.clock.0.fetch_add(2 * reconciler::checks::STUCK_AFTER_MS, Ordering::Relaxed);

    let dirty = w.reconciler.cross_check("ops").await.unwrap();
    assert!(!dirty.ok);
    let cny_code = cny().to_string();
    let settled_code = settled.to_string();
    assert_eq!(
        failing(&dirty),
        vec![
            ("transfers_have_orders", vec!["pay_nosuchorder"]),
            ("succeeded_orders_booked_in_full", vec![paid.as_str()]),
            ("failed_orders_move_nothing", vec![failed.as_str()]),
            ("final_orders_hold_nothing", vec![topup.as_str()]),
            ("wallets_equal_their_line", vec![cny_code.as_str()]),
            ("settled_takings_are_settlements", vec![settled_code.as_str()]),
            ("suspense_holds_open_breaks", vec!["bank_a/CNY"]),
            ("no_overdue_orders", vec![stuck.as_str()]),
        ],
        "each check finds its own kind, and the journal still verifies"
    );
    // The journal is verified from where the clean run left it: only what came since.
    let journal = dirty.checks.iter().find(|c| c.name == "journal_verifies").unwrap();
    let head = tokio::task::block_in_place(|| w.reader.head().unwrap());
    assert!(journal.examined > 0 && journal.examined < head.last_seq.0, "{journal:?}");
    assert!(
        dirty.journal_checkpoint.unwrap().batch_seq > clean.journal_checkpoint.unwrap().batch_seq
    );
    let stored = w.reconciler.store().check_runs(10).unwrap();
    assert_eq!(stored.first().map(|r| &r.id), Some(&dirty.id), "runs are stored, newest first");
    tokio::task::block_in_place(|| drop(w));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cross_check_finds_its_kind_on_sqlite() {
    each_check_finds_its_kind(&Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cross_check_finds_its_kind_on_postgres() {
    let Some(backend) = tokio::task::block_in_place(Backend::postgres) else { return };
    each_check_finds_its_kind(&backend).await;
    if let Backend::Postgres(target) = &backend {
        let _ = tokio::task::block_in_place(|| store::postgres::drop_schema(target));
    }
}
