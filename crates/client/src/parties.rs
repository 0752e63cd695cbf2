//! Customers and merchants of the payment core (tag `payments`): opening one opens its
//! accounts (a wallet per asset for a customer; unsettled and settled payables for a merchant).

use serde::{Deserialize, Serialize};

use crate::client::{Client, Query, Reply};
use crate::error::ClientError;
use crate::idempotency::IdempotencyKey;
use crate::ledger::AccountLayout;
use crate::routes;
use crate::wire::{AccountId, SignedAmount};

/// `POST /v1/customers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CustomerRequest {
    /// Your id for the customer, unique in your tenant: 1 to 64 of `A-Z a-z 0-9 _ . -`.
    pub id: String,
    /// At most 200 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 1 to 16 defined assets; a wallet is opened in each.
    pub assets: Vec<String>,
}

impl CustomerRequest {
    pub fn new(id: &str, assets: &[&str]) -> CustomerRequest {
        CustomerRequest {
            id: id.to_string(),
            name: None,
            assets: assets.iter().map(|asset| asset.to_string()).collect(),
        }
    }
}

/// `POST /v1/merchants`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MerchantRequest {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 1 to 16 defined assets; payables are opened in each.
    pub assets: Vec<String>,
    /// The platform's fee on each payment, in basis points (0 to 10,000), rounded half up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fee_bps: Option<u32>,
    /// Payments of day T are settled on day T+N (0 to 90, default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settle_after_days: Option<u32>,
    /// A hot merchant's unsettled payables spread over rows: `SubAccounts` (credits spendable
    /// at once) or `Buffered` (folded within 100 ms). Plain when absent; fixed once open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsettled_layout: Option<AccountLayout>,
}

impl MerchantRequest {
    pub fn new(id: &str, assets: &[&str]) -> MerchantRequest {
        MerchantRequest {
            id: id.to_string(),
            name: None,
            assets: assets.iter().map(|asset| asset.to_string()).collect(),
            fee_bps: None,
            settle_after_days: None,
            unsettled_layout: None,
        }
    }
}

/// One of a party's accounts with its balance.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct BalanceLine {
    pub asset: String,
    /// `wallet` for customers; `unsettled` and `settled` for merchants.
    pub account: String,
    /// The ledger account (`GET /v1/accounts/{id}` and its entries).
    pub account_id: AccountId,
    /// Posted credits minus posted debits.
    pub balance: SignedAmount,
    /// What can be spent now: the balance minus holds.
    pub available: SignedAmount,
}

/// A customer or a merchant with its balances.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct PartyView {
    pub id: String,
    /// `customer` or `merchant`.
    pub object: String,
    pub name: String,
    pub assets: Vec<String>,
    /// Merchants: the platform's fee on each payment, in basis points.
    pub fee_bps: u32,
    /// Merchants: payments of day T are settled on day T+N.
    pub settle_after_days: u32,
    /// Merchants: how the unsettled payables are spread over rows; `None` for customers.
    #[serde(default)]
    pub unsettled_layout: Option<AccountLayout>,
    pub balances: Vec<BalanceLine>,
    pub created_at_ms: u64,
}

impl PartyView {
    /// The line of `account` (`wallet`, `unsettled`, `settled`) in `asset`.
    pub fn balance(&self, account: &str, asset: &str) -> Option<&BalanceLine> {
        self.balances.iter().find(|line| line.account == account && line.asset == asset)
    }
}

impl Client {
    /// Opens a customer: 201; 200 if opened before with the same terms (409
    /// `party_exists_with_different_fields` otherwise).
    pub async fn create_customer(
        &self,
        customer: &CustomerRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<PartyView>, ClientError> {
        self.write(routes::CREATE_CUSTOMER, &[], Some(customer), idempotency_key).await
    }

    pub async fn get_customer(&self, id: &str) -> Result<PartyView, ClientError> {
        self.read(routes::GET_CUSTOMER, &[id], Query::new()).await
    }

    /// Opens a merchant.
    pub async fn create_merchant(
        &self,
        merchant: &MerchantRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Reply<PartyView>, ClientError> {
        self.write(routes::CREATE_MERCHANT, &[], Some(merchant), idempotency_key).await
    }

    pub async fn get_merchant(&self, id: &str) -> Result<PartyView, ClientError> {
        self.read(routes::GET_MERCHANT, &[id], Query::new()).await
    }
}
