//! Who may touch which ledger resource, and in whose ids.
//!
//! - Ownership: every account belongs to the tenant whose key opened it; a customer's or
//!   merchant's accounts (opened by the payment core) belong to the party's tenant for
//!   reading, never for raw ledger writes (money on them moves through the payment core's
//!   orders only). Another tenant gets 404, never 403, so it cannot learn that an id exists.
//!   A transfer has no owner of its own: it is visible to whoever may read one of its
//!   accounts. Admin keys see everything. A merchant's key works in the payment core only:
//!   the ledger API answers it 403 `merchant_key_forbidden`, whatever the id.
//! - Ids: each tenant names accounts, transfers and holds in its own namespace
//!   (`access::namespace`): ids in requests are mapped to ledger ids here, and ids in answers
//!   back, so two tenants may both use id 9001 and neither notices the other.

use access::namespace::Namespace;
use access::ResourceKind;
use axum::http::StatusCode;
use ledger::{AccountId, NewTransfer, TransferAction, TransferId};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::request::blocking;
use crate::views::{AccountStatusView, AccountView, BalanceView, EntryView, TransferView};
use crate::AppState;

/// The caller's namespace.
pub fn namespace(state: &AppState, caller: &Caller) -> Namespace {
    state.namespaces.of_mode(caller.tenant(), caller.is_admin(), caller.key.mode)
}

/// The ledger's id for the caller's account id.
pub fn ledger_account(namespace: &Namespace, id: AccountId) -> AccountId {
    mapped(namespace.to_ledger(id.get()), AccountId::new)
}

/// The caller's id for a ledger account id.
pub fn client_account(namespace: &Namespace, id: AccountId) -> AccountId {
    mapped(namespace.to_client(id.get()), AccountId::new)
}

pub fn ledger_transfer(namespace: &Namespace, id: TransferId) -> TransferId {
    mapped(namespace.to_ledger(id.get()), TransferId::new)
}

pub fn client_transfer(namespace: &Namespace, id: TransferId) -> TransferId {
    mapped(namespace.to_client(id.get()), TransferId::new)
}

fn mapped<T, E: std::fmt::Debug>(raw: u128, new: impl Fn(u128) -> Result<T, E>) -> T {
    match new(raw) {
        Ok(id) => id,
        // The namespace maps non-zero ids to non-zero ids (tested in `access::namespace`).
        Err(error) => unreachable!("a namespace mapped an id to zero: {error:?}"),
    }
}

/// A new transfer as the caller named it, with every id mapped to the ledger's.
pub fn ledger_new_transfer(namespace: &Namespace, transfer: NewTransfer) -> NewTransfer {
    if namespace.is_identity() {
        return transfer;
    }
    let account = |id| ledger_account(namespace, id);
    let movement = |mut movement: ledger::model::Movement| {
        movement.debit_account_id = account(movement.debit_account_id);
        movement.credit_account_id = account(movement.credit_account_id);
        movement
    };
    let action = match transfer.action {
        TransferAction::Post(m) => TransferAction::Post(movement(m)),
        TransferAction::Pending { movement: m, timeout_secs } => {
            TransferAction::Pending { movement: movement(m), timeout_secs }
        }
        TransferAction::PostPending { pending_id, amount } => TransferAction::PostPending {
            pending_id: ledger_transfer(namespace, pending_id),
            amount,
        },
        TransferAction::VoidPending { pending_id } => {
            TransferAction::VoidPending { pending_id: ledger_transfer(namespace, pending_id) }
        }
    };
    NewTransfer { id: ledger_transfer(namespace, transfer.id), action, ..transfer }
}

impl AccountView {
    /// The view with its ids in `namespace`.
    pub fn named_in(mut self, namespace: &Namespace) -> AccountView {
        self.id = client_account(namespace, self.id);
        if let ledger::model::AccountLayout::Row { of, row } = self.layout {
            self.layout =
                ledger::model::AccountLayout::Row { of: client_account(namespace, of), row };
        }
        for row in &mut self.rows {
            *row = client_account(namespace, *row);
        }
        self
    }
}

impl AccountStatusView {
    pub fn named_in(mut self, namespace: &Namespace) -> AccountStatusView {
        self.account_id = client_account(namespace, self.account_id);
        self
    }
}

impl BalanceView {
    pub fn named_in(mut self, namespace: &Namespace) -> BalanceView {
        self.account_id = client_account(namespace, self.account_id);
        self
    }
}

impl EntryView {
    pub fn named_in(mut self, namespace: &Namespace) -> EntryView {
        self.transfer_id = client_transfer(namespace, self.transfer_id);
        self
    }
}

impl TransferView {
    pub fn named_in(mut self, namespace: &Namespace) -> TransferView {
        self.id = client_transfer(namespace, self.id);
        self.debit_account_id = client_account(namespace, self.debit_account_id);
        self.credit_account_id = client_account(namespace, self.credit_account_id);
        self.pending_id = self.pending_id.map(|id| client_transfer(namespace, id));
        self
    }
}

/// What the caller wants to do with an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Read it, its entries, balances and transfers.
    Read,
    /// Move money on it or change its status through the ledger API.
    Write,
}

/// 403 for a merchant's key: it works in the payment core only.
pub fn not_for_merchant_keys(caller: &Caller) -> Result<(), ApiError> {
    match caller.merchant() {
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "merchant_key_forbidden",
            "a merchant's key cannot do this",
        )),
        None => Ok(()),
    }
}

/// Checks that the caller may use the ledger account `id` (a ledger id) as `using` says.
pub async fn authorize_account(
    state: &AppState,
    caller: &Caller,
    id: AccountId,
    using: Use,
) -> Result<(), ApiError> {
    not_for_merchant_keys(caller)?;
    if caller.is_admin() {
        return Ok(());
    }
    let owns = owner(state, ResourceKind::Account, id).await?.as_ref() == Some(caller.tenant());
    let reads_party = using == Use::Read
        && !owns
        && owner(state, ResourceKind::PartyAccount, id).await?.as_ref() == Some(caller.tenant());
    if owns || reads_party {
        Ok(())
    } else {
        Err(ApiError::not_found("account"))
    }
}

/// Whether the caller may use at least one of `accounts` (ledger ids) as `using` says.
pub async fn uses_one(
    state: &AppState,
    caller: &Caller,
    accounts: [AccountId; 2],
    using: Use,
) -> Result<bool, ApiError> {
    for account in accounts {
        match authorize_account(state, caller, account, using).await {
            Ok(()) => return Ok(true),
            Err(error) if error.status == StatusCode::NOT_FOUND => {}
            Err(error) => return Err(error),
        }
    }
    Ok(false)
}

/// The tenant owning a ledger account, as `kind` records it (cached once settled).
async fn owner(
    state: &AppState,
    kind: ResourceKind,
    id: AccountId,
) -> Result<Option<access::TenantId>, ApiError> {
    if let Some(owner) = state.caches.owner(kind, id.get()) {
        return Ok(Some(owner));
    }
    let access = state.access.clone();
    let reader = state.reader.clone();
    let (owner, settled) = blocking(move || {
        match reader.account(id)?.map(|a| a.layout) {
            // The ledger decides first: a row of a layout belongs to whoever owns its
            // account, whatever the owner table says of the row's id.
            Some(ledger::model::AccountLayout::Row { of, .. }) => {
                Ok((access.owner(kind, of.get())?, true))
            }
            Some(_) => Ok((access.owner(kind, id.get())?, true)),
            // No account yet: the id may still become a row, so nothing is cached.
            None => Ok((access.owner(kind, id.get())?, false)),
        }
    })
    .await?;
    if let (Some(owner), true) = (&owner, settled) {
        state.caches.put_owner(kind, id.get(), owner.clone());
    }
    Ok(owner)
}

/// Records the caller as the owner of a new account (a ledger id); 409 `id_taken` if another
/// tenant owns it (possible only for ids an admin chose: tenants' ids are in their own
/// namespaces) or if it is a row of another account's layout.
pub async fn claim_account(
    state: &AppState,
    caller: &Caller,
    id: AccountId,
) -> Result<(), ApiError> {
    not_for_merchant_keys(caller)?;
    let access = state.access.clone();
    let reader = state.reader.clone();
    let tenant = caller.tenant().clone();
    let owner = blocking(move || {
        // A row of an account's layout is never anyone's to claim: it is the ledger's.
        if reader.account(id)?.is_some_and(|a| a.layout.is_row()) {
            return Ok(None);
        }
        Ok(Some(access.claim_owner(ResourceKind::Account, id.get(), &tenant)?))
    })
    .await?;
    let taken = match &owner {
        Some(owner) => owner != caller.tenant() && !caller.is_admin(),
        None => true,
    };
    if taken {
        return Err(ApiError::new(StatusCode::CONFLICT, "id_taken", "this account id is taken")
            .with_param("id"));
    }
    Ok(())
}

/// Records `tenant` as the reader of a customer's or merchant's ledger account. Blocking.
pub fn claim_party_account(
    state: &AppState,
    tenant: &access::TenantId,
    id: AccountId,
) -> Result<(), ApiError> {
    if state.caches.owner(ResourceKind::PartyAccount, id.get()).is_some() {
        return Ok(());
    }
    let owner = state.access.claim_owner(ResourceKind::PartyAccount, id.get(), tenant)?;
    state.caches.put_owner(ResourceKind::PartyAccount, id.get(), owner);
    Ok(())
}
