//! The journal's frame payload: one committed batch ([`BatchWrite`]) as bytes, and back.
//!
//! Written by hand, not through serde: the ledger's types are tagged for JSON (internally
//! tagged enums, decimal-string ids), which compact binary formats cannot read back, and a
//! journal must decode byte for byte whatever serde's or a format crate's version. The
//! encoding is fixed-width little-endian integers and length-prefixed strings, versioned by
//! [`PAYLOAD_VERSION`] in every frame. Frames the books already hold are skipped unread, so
//! after a clean stop a release with another version reads nothing old; a tail a crash left
//! in a version it does not read stops its start, with the advice to run the old release
//! once (`Engine::open`).
//!
//! It looks like `ledger::journal`'s canonical encoding and is kept apart on purpose: that
//! one is what batch hashes cover, frozen forever and only what a record must prove (an
//! opening without the account's later state); this one is storage, versioned, and carries
//! whole rows.
//!
//! Every field of the batch is kept — records, entries, accounts' final states, holds — so
//! that recovery and the projections apply a frame as it is, without running the posting
//! logic again.

use ledger::apply::BatchWrite;
use ledger::journal::{BatchHeader, Hash};
use ledger::model::{
    Account, AccountClass, AccountLayout, AccountStatus, BalanceRule, Balances, BoundedText,
    BusinessCode, ChartCode, ChartEntry, Entry, Fingerprint, Hold, HoldState, Movement, Record,
    Side, Transfer, TransferKind,
};
use ledger::{AccountId, BatchSeq, Seq, Timestamp, TransferId};
use money::{Amount, Asset, AssetCode};

/// The version of the payload's layout, stored in every frame. Every version starts with the
/// batch number (u64, little-endian), so a frame the books already hold is skipped unread.
pub const PAYLOAD_VERSION: u8 = 1;

/// The batch number a payload starts with, in any version (0 if it is too short: the
/// decoder says why).
pub fn peek_batch_seq(payload: &[u8]) -> u64 {
    payload.get(..8).map_or(0, |bytes| {
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        u64::from_le_bytes(array)
    })
}

/// A payload that does not decode: the frame's checksum held, so this is a bug or a journal
/// written by another release, never a torn write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable journal payload at byte {at}: {what}")]
pub struct CodecError {
    pub at: usize,
    pub what: String,
}

/// Appends `batch`'s payload to `out`.
pub fn encode(batch: &BatchWrite, out: &mut Vec<u8>) {
    let header = &batch.header;
    put_u64(out, header.batch_seq.0);
    put_u64(out, header.first_seq.0);
    put_u32(out, header.n_records);
    put_u64(out, header.timestamp.0);
    out.extend_from_slice(&header.prev_hash.0);
    out.extend_from_slice(&header.hash.0);
    put_len(out, batch.records.len());
    for record in &batch.records {
        put_record(out, record);
    }
    put_len(out, batch.entries.len());
    for entry in &batch.entries {
        put_entry(out, entry);
    }
    for accounts in [&batch.opened_accounts, &batch.updated_accounts] {
        put_len(out, accounts.len());
        for account in accounts {
            put_account(out, account);
        }
    }
    put_len(out, batch.holds.len());
    for hold in &batch.holds {
        put_hold(out, hold);
    }
}

/// Decodes one payload written by [`encode`]; every byte must be used.
pub fn decode(bytes: &[u8]) -> Result<BatchWrite, CodecError> {
    let mut input = Input { bytes, at: 0 };
    let header = BatchHeader {
        batch_seq: BatchSeq(input.u64()?),
        first_seq: Seq(input.u64()?),
        n_records: input.u32()?,
        timestamp: Timestamp(input.u64()?),
        prev_hash: Hash(input.array()?),
        hash: Hash(input.array()?),
    };
    let records = input.many(Input::record)?;
    let entries = input.many(Input::entry)?;
    let opened_accounts = input.many(Input::account)?;
    let updated_accounts = input.many(Input::account)?;
    let holds = input.many(Input::hold)?;
    if input.at != bytes.len() {
        return Err(input.error(format!("{} bytes left over", bytes.len() - input.at)));
    }
    Ok(BatchWrite { header, records, entries, opened_accounts, updated_accounts, holds })
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_u128(out: &mut Vec<u8>, value: u128) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // A batch holds at most a few tens of thousands of items; texts are bounded by their types.
    put_u32(out, u32::try_from(len).unwrap_or(u32::MAX));
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    put_len(out, text.len());
    out.extend_from_slice(text.as_bytes());
}

fn put_option_u128(out: &mut Vec<u8>, value: Option<u128>) {
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            put_u128(out, value);
        }
    }
}

fn put_option_u64(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            put_u64(out, value);
        }
    }
}

fn put_balances(out: &mut Vec<u8>, balances: &Balances) {
    put_u64(out, balances.debits_pending.minor());
    put_u64(out, balances.debits_posted.minor());
    put_u64(out, balances.credits_pending.minor());
    put_u64(out, balances.credits_posted.minor());
}

fn put_movement(out: &mut Vec<u8>, movement: &Movement) {
    put_u128(out, movement.debit_account_id.get());
    put_u128(out, movement.credit_account_id.get());
    put_text(out, movement.asset.as_str());
    put_u64(out, movement.amount.minor());
}

fn put_record(out: &mut Vec<u8>, record: &Record) {
    match record {
        Record::AssetDefined { seq, asset } => {
            out.push(1);
            put_u64(out, seq.0);
            put_text(out, asset.code().as_str());
            out.push(asset.scale());
        }
        Record::ChartDefined { seq, entry } => {
            out.push(2);
            put_u64(out, seq.0);
            put_u32(out, entry.code.0);
            put_text(out, entry.name.as_str());
            out.push(entry.class.code());
        }
        Record::AccountOpened(account) => {
            out.push(3);
            put_account(out, account);
        }
        Record::AccountStatusSet { seq, account_id, status } => {
            out.push(4);
            put_u64(out, seq.0);
            put_u128(out, account_id.get());
            out.push(status.code());
        }
        Record::Transfer(transfer) => {
            out.push(5);
            put_transfer(out, transfer);
        }
    }
}

fn put_transfer(out: &mut Vec<u8>, transfer: &Transfer) {
    put_u128(out, transfer.id.get());
    out.push(transfer.kind.code());
    put_u128(out, transfer.debit_account_id.get());
    put_u128(out, transfer.credit_account_id.get());
    put_text(out, transfer.asset.as_str());
    put_u64(out, transfer.amount.minor());
    put_option_u128(out, transfer.pending_id.map(TransferId::get));
    put_option_u64(out, transfer.expires_at.map(|at| at.0));
    put_u32(out, transfer.business_code.0);
    put_text(out, transfer.order_ref.as_str());
    put_u64(out, transfer.seq.0);
    put_u64(out, transfer.timestamp.0);
    out.extend_from_slice(&transfer.fingerprint.0);
}

fn put_rule(out: &mut Vec<u8>, rule: &BalanceRule) {
    match rule {
        BalanceRule::Unbounded => out.push(0),
        BalanceRule::DebitsWithinCredits { overdraft_minor } => {
            out.push(1);
            put_u64(out, overdraft_minor.minor());
        }
        BalanceRule::CreditsWithinDebits { limit_minor } => {
            out.push(2);
            put_u64(out, limit_minor.minor());
        }
    }
}

fn put_layout(out: &mut Vec<u8>, layout: &AccountLayout) {
    match *layout {
        AccountLayout::Plain => out.push(0),
        AccountLayout::SubAccounts { count } => out.extend_from_slice(&[1, count]),
        AccountLayout::Buffered { count } => out.extend_from_slice(&[2, count]),
        AccountLayout::Row { of, row } => {
            out.push(3);
            put_u128(out, of.get());
            out.push(row);
        }
    }
}

fn put_account(out: &mut Vec<u8>, account: &Account) {
    put_u128(out, account.id.get());
    put_text(out, account.asset.as_str());
    put_u32(out, account.chart_code.0);
    put_rule(out, &account.rule);
    put_text(out, account.metadata.as_str());
    put_layout(out, &account.layout);
    out.push(account.status.code());
    put_balances(out, &account.balances);
    put_u64(out, account.opened_seq.0);
    put_u64(out, account.opened_at.0);
}

fn put_entry(out: &mut Vec<u8>, entry: &Entry) {
    put_u128(out, entry.account_id.get());
    put_u64(out, entry.seq.0);
    put_u128(out, entry.transfer_id.get());
    out.push(match entry.side {
        Side::Debit => 1,
        Side::Credit => 2,
    });
    put_u64(out, entry.amount.minor());
    put_balances(out, &entry.balances_after);
}

fn put_hold(out: &mut Vec<u8>, hold: &Hold) {
    put_u128(out, hold.pending_id.get());
    put_movement(out, &hold.movement);
    put_option_u64(out, hold.expires_at.map(|at| at.0));
    out.push(hold.state.code());
    put_u32(out, hold.business_code.0);
}

struct Input<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn error(&self, what: impl Into<String>) -> CodecError {
        CodecError { at: self.at, what: what.into() }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], CodecError> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.bytes.len());
        let Some(end) = end else { return Err(self.error(format!("{n} bytes past the end"))) };
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn u128(&mut self) -> Result<u128, CodecError> {
        Ok(u128::from_le_bytes(self.array()?))
    }

    fn many<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, CodecError>,
    ) -> Result<Vec<T>, CodecError> {
        let len = self.u32()? as usize;
        // Never trust a length for an allocation: each item is at least a byte.
        let mut items = Vec::with_capacity(len.min(self.bytes.len() - self.at));
        for _ in 0..len {
            items.push(item(self)?);
        }
        Ok(items)
    }

    fn text(&mut self) -> Result<&str, CodecError> {
        let len = self.u32()? as usize;
        let at = self.at;
        std::str::from_utf8(self.take(len)?)
            .map_err(|_| CodecError { at, what: "text is not UTF-8".into() })
    }

    fn bounded<const N: usize>(&mut self) -> Result<BoundedText<N>, CodecError> {
        let text = self.text()?.to_owned();
        BoundedText::new(text).map_err(|error| self.error(error.to_string()))
    }

    fn asset_code(&mut self) -> Result<AssetCode, CodecError> {
        let code = self.text()?.to_owned();
        AssetCode::new(&code).map_err(|error| self.error(error.to_string()))
    }

    fn amount(&mut self) -> Result<Amount, CodecError> {
        let minor = self.u64()?;
        Amount::new(minor).ok_or_else(|| self.error(format!("amount {minor} out of range")))
    }

    fn account_id(&mut self) -> Result<AccountId, CodecError> {
        let raw = self.u128()?;
        AccountId::new(raw).map_err(|error| self.error(error.to_string()))
    }

    fn transfer_id(&mut self) -> Result<TransferId, CodecError> {
        let raw = self.u128()?;
        TransferId::new(raw).map_err(|error| self.error(error.to_string()))
    }

    fn option_u64(&mut self) -> Result<Option<u64>, CodecError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            tag => Err(self.error(format!("option tag {tag}"))),
        }
    }

    fn option_transfer_id(&mut self) -> Result<Option<TransferId>, CodecError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.transfer_id()?)),
            tag => Err(self.error(format!("option tag {tag}"))),
        }
    }

    fn balances(&mut self) -> Result<Balances, CodecError> {
        Ok(Balances {
            debits_pending: self.amount()?,
            debits_posted: self.amount()?,
            credits_pending: self.amount()?,
            credits_posted: self.amount()?,
        })
    }

    fn movement(&mut self) -> Result<Movement, CodecError> {
        Ok(Movement {
            debit_account_id: self.account_id()?,
            credit_account_id: self.account_id()?,
            asset: self.asset_code()?,
            amount: self.amount()?,
        })
    }

    fn record(&mut self) -> Result<Record, CodecError> {
        Ok(match self.u8()? {
            1 => {
                let seq = Seq(self.u64()?);
                let code = self.asset_code()?;
                let scale = self.u8()?;
                let asset =
                    Asset::new(code, scale).map_err(|error| self.error(error.to_string()))?;
                Record::AssetDefined { seq, asset }
            }
            2 => {
                let seq = Seq(self.u64()?);
                let code = ChartCode(self.u32()?);
                let name = self.bounded()?;
                let class = self.u8()?;
                let class = AccountClass::from_code(class)
                    .ok_or_else(|| self.error(format!("account class {class}")))?;
                Record::ChartDefined { seq, entry: ChartEntry { code, name, class } }
            }
            3 => Record::AccountOpened(self.account()?),
            4 => {
                let seq = Seq(self.u64()?);
                let account_id = self.account_id()?;
                let status = self.status()?;
                Record::AccountStatusSet { seq, account_id, status }
            }
            5 => Record::Transfer(self.transfer()?),
            tag => return Err(self.error(format!("record tag {tag}"))),
        })
    }

    fn status(&mut self) -> Result<AccountStatus, CodecError> {
        let code = self.u8()?;
        AccountStatus::from_code(code).ok_or_else(|| self.error(format!("account status {code}")))
    }

    fn transfer(&mut self) -> Result<Transfer, CodecError> {
        let id = self.transfer_id()?;
        let kind = self.u8()?;
        let kind = TransferKind::from_code(kind)
            .ok_or_else(|| self.error(format!("transfer kind {kind}")))?;
        Ok(Transfer {
            id,
            kind,
            debit_account_id: self.account_id()?,
            credit_account_id: self.account_id()?,
            asset: self.asset_code()?,
            amount: self.amount()?,
            pending_id: self.option_transfer_id()?,
            expires_at: self.option_u64()?.map(Timestamp),
            business_code: BusinessCode(self.u32()?),
            order_ref: self.bounded()?,
            seq: Seq(self.u64()?),
            timestamp: Timestamp(self.u64()?),
            fingerprint: Fingerprint(self.array()?),
        })
    }

    fn rule(&mut self) -> Result<BalanceRule, CodecError> {
        Ok(match self.u8()? {
            0 => BalanceRule::Unbounded,
            1 => BalanceRule::DebitsWithinCredits { overdraft_minor: self.amount()? },
            2 => BalanceRule::CreditsWithinDebits { limit_minor: self.amount()? },
            tag => return Err(self.error(format!("balance rule {tag}"))),
        })
    }

    fn layout(&mut self) -> Result<AccountLayout, CodecError> {
        Ok(match self.u8()? {
            0 => AccountLayout::Plain,
            1 => AccountLayout::SubAccounts { count: self.u8()? },
            2 => AccountLayout::Buffered { count: self.u8()? },
            3 => AccountLayout::Row { of: self.account_id()?, row: self.u8()? },
            tag => return Err(self.error(format!("layout {tag}"))),
        })
    }

    fn account(&mut self) -> Result<Account, CodecError> {
        Ok(Account {
            id: self.account_id()?,
            asset: self.asset_code()?,
            chart_code: ChartCode(self.u32()?),
            rule: self.rule()?,
            metadata: self.bounded()?,
            layout: self.layout()?,
            status: self.status()?,
            balances: self.balances()?,
            opened_seq: Seq(self.u64()?),
            opened_at: Timestamp(self.u64()?),
        })
    }

    fn entry(&mut self) -> Result<Entry, CodecError> {
        let account_id = self.account_id()?;
        let seq = Seq(self.u64()?);
        let transfer_id = self.transfer_id()?;
        let side = match self.u8()? {
            1 => Side::Debit,
            2 => Side::Credit,
            tag => return Err(self.error(format!("side {tag}"))),
        };
        Ok(Entry {
            account_id,
            seq,
            transfer_id,
            side,
            amount: self.amount()?,
            balances_after: self.balances()?,
        })
    }

    fn hold(&mut self) -> Result<Hold, CodecError> {
        let pending_id = self.transfer_id()?;
        let movement = self.movement()?;
        let expires_at = self.option_u64()?.map(Timestamp);
        let state = self.u8()?;
        let state =
            HoldState::from_code(state).ok_or_else(|| self.error(format!("hold state {state}")))?;
        Ok(Hold {
            pending_id,
            movement,
            expires_at,
            state,
            business_code: BusinessCode(self.u32()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: u128) -> AccountId {
        AccountId::new(raw).expect("id")
    }

    fn tid(raw: u128) -> TransferId {
        TransferId::new(raw).expect("id")
    }

    fn amount(minor: u64) -> Amount {
        Amount::new(minor).expect("amount")
    }

    fn balances(base: u64) -> Balances {
        Balances {
            debits_pending: amount(base),
            debits_posted: amount(base + 1),
            credits_pending: amount(base + 2),
            credits_posted: Amount::MAX,
        }
    }

    fn account(raw: u128, layout: AccountLayout, rule: BalanceRule) -> Account {
        Account {
            id: id(raw),
            asset: AssetCode::new("POINTS").expect("code"),
            chart_code: ChartCode(2241),
            rule,
            metadata: BoundedText::new("钱包 wallet ✓").expect("text"),
            layout,
            status: AccountStatus::FrozenDebits,
            balances: balances(raw as u64),
            opened_seq: Seq(raw as u64),
            opened_at: Timestamp(u64::MAX),
        }
    }

    /// A batch holding every kind of record, layout, rule, hold state and option.
    fn every_shape() -> BatchWrite {
        let layouts = [
            AccountLayout::Plain,
            AccountLayout::SubAccounts { count: 8 },
            AccountLayout::Buffered { count: 64 },
            AccountLayout::Row { of: id(u128::MAX), row: 3 },
        ];
        let rules = [
            BalanceRule::Unbounded,
            BalanceRule::DebitsWithinCredits { overdraft_minor: amount(5) },
            BalanceRule::CreditsWithinDebits { limit_minor: Amount::MAX },
        ];
        let accounts: Vec<Account> = layouts
            .iter()
            .enumerate()
            .map(|(n, layout)| account(n as u128 + 1, *layout, rules[n % rules.len()]))
            .collect();
        let transfer = |n: u128, kind, pending: Option<u128>, expires: Option<u64>| Transfer {
            id: tid(n),
            kind,
            debit_account_id: id(1),
            credit_account_id: id(u128::MAX),
            asset: AssetCode::new("CNY").expect("code"),
            amount: amount(n as u64),
            pending_id: pending.map(tid),
            expires_at: expires.map(Timestamp),
            business_code: BusinessCode(u32::MAX),
            order_ref: BoundedText::new(if n.is_multiple_of(2) { "" } else { "订单-42" })
                .expect("text"),
            seq: Seq(n as u64),
            timestamp: Timestamp(n as u64 * 7),
            fingerprint: Fingerprint([n as u8; 16]),
        };
        let kinds = [
            TransferKind::Posted,
            TransferKind::Pending,
            TransferKind::PostPending,
            TransferKind::VoidPending,
            TransferKind::ExpirePending,
        ];
        let mut records = vec![
            Record::AssetDefined {
                seq: Seq(1),
                asset: Asset::new(AssetCode::new("CNY").expect("code"), 2).expect("asset"),
            },
            Record::ChartDefined {
                seq: Seq(2),
                entry: ChartEntry {
                    code: ChartCode(1002),
                    name: BoundedText::new("银行存款").expect("text"),
                    class: AccountClass::Asset,
                },
            },
            Record::AccountStatusSet {
                seq: Seq(3),
                account_id: id(9),
                status: AccountStatus::Closed,
            },
        ];
        records.extend(accounts.iter().cloned().map(Record::AccountOpened));
        for (n, kind) in kinds.iter().enumerate() {
            let n = n as u128 + 10;
            let pending = n.is_multiple_of(2).then_some(u128::MAX - n);
            let expires = n.is_multiple_of(3).then_some(u64::MAX - 1);
            records.push(Record::Transfer(transfer(n, *kind, pending, expires)));
        }
        let entries = [Side::Debit, Side::Credit]
            .into_iter()
            .enumerate()
            .map(|(n, side)| Entry {
                account_id: id(n as u128 + 1),
                seq: Seq(100 + n as u64),
                transfer_id: tid(10),
                side,
                amount: amount(3),
                balances_after: balances(9),
            })
            .collect();
        let holds = [HoldState::Pending, HoldState::Posted, HoldState::Voided, HoldState::Expired]
            .into_iter()
            .enumerate()
            .map(|(n, state)| Hold {
                pending_id: tid(n as u128 + 50),
                movement: Movement {
                    debit_account_id: id(1),
                    credit_account_id: id(2),
                    asset: AssetCode::new("CNY").expect("code"),
                    amount: amount(1),
                },
                expires_at: n.is_multiple_of(2).then_some(Timestamp(n as u64)),
                state,
                business_code: BusinessCode(n as u32),
            })
            .collect();
        BatchWrite {
            header: BatchHeader {
                batch_seq: BatchSeq(u64::MAX),
                first_seq: Seq(1),
                n_records: records.len() as u32,
                timestamp: Timestamp(12),
                prev_hash: Hash([7; 32]),
                hash: Hash([9; 32]),
            },
            records,
            entries,
            opened_accounts: accounts.clone(),
            updated_accounts: accounts,
            holds,
        }
    }

    #[test]
    fn every_shape_of_a_batch_reads_back_as_it_was_written() {
        let batch = every_shape();
        let mut bytes = Vec::new();
        encode(&batch, &mut bytes);
        let decoded = decode(&bytes).expect("decode");
        assert_eq!(decoded, batch);
    }

    #[test]
    fn a_cut_or_padded_payload_is_refused_never_misread() {
        let mut bytes = Vec::new();
        encode(&every_shape(), &mut bytes);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "decoded a payload cut at {cut}");
        }
        bytes.push(0);
        assert!(decode(&bytes).is_err(), "decoded a payload with a byte left over");
    }
}
