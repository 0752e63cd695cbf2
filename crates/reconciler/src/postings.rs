//! Reconciliation's postings in the ledger: which account each [`Book`] is for a break's
//! channel and currency, and ids derived from the break, so booking twice is booking once.
//!
//! Business codes: 7001 puts a break in suspense, 7002 resolves one. They are not payment
//! codes: a cross-check that every payment transfer has its order does not look for these.

use channels::ChannelId;
use ledger::apply::Command;
use ledger::model::{BoundedText, Movement, NewTransfer, TransferAction};
use ledger::{BusinessCode, TransferId};
use money::AssetCode;
use payments::chart::{internal_account, internal_account_id, wallet_account_id, Internal};
use recon::breaks::{Book, Posting};
use sha2::{Digest, Sha256};

pub const BUSINESS_CODE_RECON_SUSPENSE: BusinessCode = BusinessCode(7001);
pub const BUSINESS_CODE_RECON_RESOLUTION: BusinessCode = BusinessCode(7002);

fn internal(book: &Book, channel: &ChannelId) -> Option<Internal> {
    Some(match book {
        Book::Clearing => Internal::ChannelClearing(channel.clone()),
        Book::Suspense => Internal::ReconSuspense(channel.clone()),
        Book::ChannelFees => Internal::ChannelFees,
        Book::Losses => Internal::FundLosses,
        Book::Recoveries => Internal::LossRecoveries,
        Book::Wallet(_) => return None,
    })
}

fn account(book: &Book, channel: &ChannelId, asset: AssetCode) -> ledger::AccountId {
    match book {
        Book::Wallet(customer) => wallet_account_id(customer, asset),
        other => match internal(other, channel) {
            Some(internal) => internal_account_id(&internal, asset),
            None => unreachable!("every book but a wallet is internal"),
        },
    }
}

/// Commands opening the internal accounts `postings` touch (idempotent in the ledger).
pub fn open_accounts(postings: &[Posting], channel: &ChannelId, asset: AssetCode) -> Vec<Command> {
    let mut commands: Vec<Command> = Vec::new();
    for book in postings.iter().flat_map(|p| [&p.debit, &p.credit]) {
        if let Some(internal) = internal(book, channel) {
            let command = Command::OpenAccount(internal_account(&internal, asset));
            if !commands.contains(&command) {
                commands.push(command);
            }
        }
    }
    commands
}

/// The name of `step` in a break's `revision`: revision 0 keeps the plain name (the ids of
/// breaks booked before revisions existed), each later one its own.
pub fn step(step: &str, revision: u32) -> String {
    if revision == 0 {
        step.to_owned()
    } else {
        format!("{step}#{revision}")
    }
}

/// The transfer id of `leg` of `step` of break `break_id`.
pub fn transfer_id(break_id: &str, step: &str, leg: &str) -> TransferId {
    let digest: [u8; 32] = Sha256::new()
        .chain_update(b"qianbao.recon.transfer\0")
        .chain_update(break_id)
        .chain_update([0])
        .chain_update(step)
        .chain_update([0])
        .chain_update(leg)
        .finalize()
        .into();
    let mut raw = [0u8; 16];
    raw.copy_from_slice(&digest[..16]);
    // The top bit clear (the ledger reserves that range), the bottom set (never zero).
    match TransferId::new((u128::from_be_bytes(raw) >> 1) | 1) {
        Ok(id) => id,
        Err(_) => unreachable!("odd, so not zero"),
    }
}

/// The linked group booking `postings` of `step` of a break.
pub fn transfers(
    postings: &[Posting],
    break_id: &str,
    step: &str,
    code: BusinessCode,
    channel: &ChannelId,
    asset: AssetCode,
) -> Vec<NewTransfer> {
    // A break id is `brk_` and 24 hex digits: always within the order reference's bound.
    const _: () = assert!(4 + 24 <= ledger::model::ORDER_REF_LEN_MAX);
    let order_ref = match BoundedText::new(break_id) {
        Ok(text) => text,
        Err(_) => unreachable!("break ids are 28 characters"),
    };
    postings
        .iter()
        .map(|posting| NewTransfer {
            id: transfer_id(break_id, step, posting.leg),
            action: TransferAction::Post(Movement {
                debit_account_id: account(&posting.debit, channel, asset),
                credit_account_id: account(&posting.credit, channel, asset),
                asset,
                amount: posting.amount,
            }),
            business_code: code,
            order_ref: order_ref.clone(),
        })
        .collect()
}
