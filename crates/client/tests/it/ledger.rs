//! The ledger API through the client, against the real service: books, accounts, transfers,
//! holds, batches, balances, history and its pages, the trial balance.

use std::collections::BTreeSet;

use client::ledger::{AccountStatus, BalanceAt, BalanceRule, Side};
use client::transfers::{
    BatchItemStatus, BatchRequest, NewTransfer, PendingTransfer, ResolveRequest, TransferKind,
    TransferRequest, VoidRequest,
};
use client::{Page, Seq, SignedAmount};

use crate::support::*;

#[tokio::test]
async fn money_moves_and_balances_follow() {
    let service = Service::start().await;
    let acme = service.acme_world().await;

    let first = pay(&acme, 1, BANK, ALICE, 1000).await;
    assert_eq!((first.kind.clone(), first.amount), (TransferKind::Posted, minor(1000)));
    assert_eq!((first.debit_account_id, first.credit_account_id), (id(BANK), id(ALICE)));
    assert_eq!(acme.get_transfer(first.id).await.unwrap(), first);

    let alice = acme.get_account(id(ALICE)).await.unwrap();
    assert_eq!(alice.status, AccountStatus::Active);
    assert_eq!(alice.rule, BalanceRule::DebitsWithinCredits { overdraft_minor: minor(0) });
    assert_eq!(alice.balances.credits_posted, minor(1000));
    assert_eq!(alice.balances.available_credit, SignedAmount::new(1000));
    let bank = acme.get_account(id(BANK)).await.unwrap();
    assert_eq!(bank.balances.available_credit, SignedAmount::new(-1000));

    // A hold of 300, posted in part (200): the rest is released.
    let hold = TransferRequest::Pending(PendingTransfer {
        transfer: NewTransfer::new(Some(transfer_id(2)), id(ALICE), id(BOB), CNY, minor(300)),
        timeout_secs: Some(3600),
    });
    let held = acme.create_transfer(&hold, None).await.unwrap().into_value();
    assert_eq!(held.kind, TransferKind::Pending);
    assert!(held.expires_at.is_some());
    let pending = acme.get_account(id(ALICE)).await.unwrap().balances;
    assert_eq!(
        (pending.debits_pending, pending.available_credit),
        (minor(300), SignedAmount::new(700))
    );
    let resolve = ResolveRequest { amount: Some(minor(200)), ..ResolveRequest::default() };
    let posted = acme.post_pending(held.id, &resolve, None).await.unwrap().into_value();
    assert_eq!(
        (posted.kind, posted.pending_id, posted.amount),
        (TransferKind::PostPending, Some(held.id), minor(200))
    );

    // A second hold, voided.
    let hold = TransferRequest::Pending(PendingTransfer {
        transfer: NewTransfer::new(Some(transfer_id(4)), id(ALICE), id(BOB), CNY, minor(100)),
        timeout_secs: None,
    });
    let held = acme.create_transfer(&hold, None).await.unwrap().into_value();
    let voided = acme.void_pending(held.id, &VoidRequest::default(), None).await.unwrap();
    assert_eq!(voided.kind, TransferKind::VoidPending);

    let alice = acme.get_balance(id(ALICE), &BalanceAt::Now).await.unwrap();
    assert_eq!(alice.as_of_seq, None);
    assert_eq!(alice.balances.available_credit, SignedAmount::new(800));
    assert_eq!(alice.balances.debits_pending, minor(0));
    let bob = acme.get_balance(id(BOB), &BalanceAt::Now).await.unwrap();
    assert_eq!(bob.balances.credits_posted, minor(200));
    // As of the first transfer: only its 1000.
    let then = acme.get_balance(id(ALICE), &BalanceAt::Seq(first.seq)).await.unwrap();
    assert_eq!(then.as_of_seq, Some(first.seq));
    assert_eq!(then.balances.credits_posted, minor(1000));
    assert_eq!(then.balances.debits_posted, minor(0));

    // A batch: one created, one refused on its own (not linked).
    let batch = BatchRequest {
        transfers: vec![post(Some(10), ALICE, BOB, 50), post(Some(11), BOB, ALICE, 1_000_000)],
        linked: false,
    };
    let results = acme.create_batch(&batch, None).await.unwrap().into_value().data;
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].status, BatchItemStatus::Created);
    assert_eq!(results[0].transfer.as_ref().unwrap().amount, minor(50));
    assert_eq!(results[1].status, BatchItemStatus::Rejected);
    assert_eq!(results[1].error.as_ref().unwrap().code, "exceeds_credits");

    // The books balance, and the journal verifies.
    let admin = service.admin();
    let trial = admin.trial_balance().await.unwrap();
    let cny = trial.assets.iter().find(|asset| asset.asset == CNY).unwrap();
    assert!(cny.balanced, "{trial:?}");
    assert_eq!(cny.debits_posted, cny.credits_posted);
    assert_eq!(cny.debits_posted.minor_units(), 1250);
    assert!(trial.lines.iter().any(|line| line.chart_code == WALLET_CHART && line.n_accounts == 2));
    assert!(admin.verify_journal(None).await.unwrap().ok);
}

#[tokio::test]
async fn accounts_freeze_and_history_pages_by_cursor() {
    let service = Service::start().await;
    let acme = service.acme_world().await;
    for n in 0..5u32 {
        pay(&acme, u128::from(n) + 1, BANK, ALICE, 10 + n).await;
    }
    pay(&acme, 6, ALICE, BOB, 7).await;

    let mut seen = Vec::new();
    let mut page = Page::first(2);
    let mut n_pages = 0;
    loop {
        let entries = acme.list_entries(id(ALICE), &page).await.unwrap();
        assert!(entries.data.len() <= 2);
        n_pages += 1;
        seen.extend(entries.data.iter().map(|entry| (entry.seq, entry.side.clone(), entry.amount)));
        match entries.next_starting_after() {
            Some(cursor) => page = Page::after(2, cursor),
            None => break,
        }
    }
    assert_eq!(n_pages, 3);
    assert_eq!(seen.len(), 6);
    let seqs: Vec<Seq> = seen.iter().map(|(seq, _, _)| *seq).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
    assert_eq!(seqs.iter().collect::<BTreeSet<_>>().len(), 6);
    assert_eq!(seen.last().unwrap().1, Side::Debit);
    assert_eq!(seen[..5].iter().filter(|(_, side, _)| *side == Side::Credit).count(), 5);

    // Frozen: nothing leaves; credits still land.
    let frozen =
        acme.set_account_status(id(ALICE), AccountStatus::FrozenDebits, None).await.unwrap();
    assert_eq!(frozen.status, AccountStatus::FrozenDebits);
    let refused = acme.create_transfer(&post(Some(7), ALICE, BOB, 1), None).await.unwrap_err();
    assert_eq!(refused.code(), Some("debit_account_frozen"));
    pay(&acme, 8, BANK, ALICE, 1).await;
    acme.set_account_status(id(ALICE), AccountStatus::Active, None).await.unwrap();
    pay(&acme, 9, ALICE, BOB, 1).await;
}
