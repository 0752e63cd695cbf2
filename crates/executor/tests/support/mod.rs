//! What the executor's small integration tests share: an asset, the parties of tenant `t`, and
//! money for a wallet from suspense.
#![allow(clippy::unwrap_used)] // test fixtures: a failed unwrap is a failed test
#![allow(dead_code)] // each test file uses its own part

use executor::{party_key, Executor, NewParty, PartyKind};
use ledger::apply::{Command, Outcome as LedgerOutcome};
use ledger::LedgerHandle;
use money::{Amount, Asset, AssetCode};
use payments::chart::{internal_account_id, wallet_account_id, Internal};

pub const TENANT: &str = "t";

pub fn cny() -> AssetCode {
    AssetCode::new("CNY").unwrap()
}

pub fn amount(minor: u64) -> Amount {
    Amount::new(minor).unwrap()
}

/// Defines CNY, bootstraps the executor, and opens customers `alice` and `bob` and merchant
/// `shop` (no fee) in [`TENANT`].
pub async fn open_parties(executor: &Executor, ledger: &LedgerHandle) {
    let defined = ledger.execute(vec![Command::DefineAsset(Asset::new(cny(), 2).unwrap())]).await;
    assert!(matches!(defined.unwrap().as_slice(), [LedgerOutcome::Asset(Ok(_))]));
    executor.bootstrap().await.unwrap();
    for (kind, id) in [
        (PartyKind::Customer, "alice"),
        (PartyKind::Customer, "bob"),
        (PartyKind::Merchant, "shop"),
    ] {
        let new = NewParty {
            kind,
            id: id.into(),
            name: String::new(),
            assets: vec![cny()],
            fee_bps: 0,
            settle_after_days: 0,
            unsettled_layout: Default::default(),
        };
        executor.open_party(TENANT, new).await.unwrap();
    }
}

/// The wallet account of `customer` in [`TENANT`], in CNY.
pub fn wallet(customer: &str) -> ledger::AccountId {
    wallet_account_id(&party_key(TENANT, customer), cny())
}

/// Posts `minor` from suspense into `customer`'s wallet, as transfer `id`.
pub async fn fund(ledger: &LedgerHandle, id: u128, customer: &str, minor: u64) {
    let fund = ledger::NewTransfer {
        id: ledger::TransferId::new(id).unwrap(),
        action: ledger::TransferAction::Post(ledger::Movement {
            debit_account_id: internal_account_id(&Internal::Suspense, cny()),
            credit_account_id: wallet(customer),
            asset: cny(),
            amount: amount(minor),
        }),
        business_code: ledger::BusinessCode(1),
        order_ref: Default::default(),
    };
    ledger.transfer(fund).await.unwrap().unwrap();
}
