//! Tombstones: a rejected ledger transfer is not stored, so its id stays free, and the same
//! transfer sent again later — by a second driver of the order, a late retry, another node —
//! could still post after the order was marked failed. Before an order acts on a rejection,
//! the executor books a tombstone under the rejected transfer's id: a hold of one minor unit
//! between two internal accounts, voided in the same group, so it leaves no balance. A later
//! copy of the real transfer then meets `id_exists_with_different_fields` and is refused;
//! and if the tombstone itself meets that code, the real transfer was booked meanwhile, which
//! the executor then reports instead of the rejection.

use ledger::model::{Movement, NewTransfer, TransferAction};
use ledger::{BusinessCode, TransferId};
use money::Amount;
use sha2::{Digest, Sha256};

use crate::chart::{internal_account_id, Internal};

/// The business code on tombstones.
pub const BUSINESS_CODE_TOMBSTONE: BusinessCode = BusinessCode(9001);

/// The id of a tombstone's void: derived from the tombstone's, below the ledger's range.
pub fn void_id(tombstone: TransferId) -> TransferId {
    let digest: [u8; 32] = Sha256::new()
        .chain_update(b"qianbao.payments.tombstone-void\0")
        .chain_update(tombstone.get().to_be_bytes())
        .finalize()
        .into();
    let mut raw = [0u8; 16];
    raw.copy_from_slice(&digest[..16]);
    let id = (u128::from_be_bytes(raw) >> 1) | 1;
    match TransferId::new(id) {
        Ok(id) => id,
        Err(_) => unreachable!("odd, so not zero"),
    }
}

/// The tombstone group for a rejected group, keyed by its first transfer: only for groups
/// that open a new movement (post or hold). Groups that post or void an existing hold need
/// none: the hold itself can be resolved only once.
pub fn for_group(group: &[NewTransfer]) -> Option<Vec<NewTransfer>> {
    let first = group.first()?;
    let asset = match &first.action {
        TransferAction::Post(movement) | TransferAction::Pending { movement, .. } => movement.asset,
        TransferAction::PostPending { .. } | TransferAction::VoidPending { .. } => return None,
    };
    let order_ref = first.order_ref.clone();
    let one = Amount::new(1)?;
    Some(vec![
        NewTransfer {
            id: first.id,
            action: TransferAction::Pending {
                movement: Movement {
                    debit_account_id: internal_account_id(&Internal::Tombstones, asset),
                    credit_account_id: internal_account_id(&Internal::Suspense, asset),
                    asset,
                    amount: one,
                },
                timeout_secs: None,
            },
            business_code: BUSINESS_CODE_TOMBSTONE,
            order_ref: order_ref.clone(),
        },
        NewTransfer {
            id: void_id(first.id),
            action: TransferAction::VoidPending { pending_id: first.id },
            business_code: BUSINESS_CODE_TOMBSTONE,
            order_ref,
        },
    ])
}
