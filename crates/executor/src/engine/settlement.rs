//! T+N settlement of merchants' takings and batch payouts from settled takings.

use super::*;

impl Executor {
    /// Creates a merchant's payout batch: every item is stored (as a payout order from the
    /// merchant's settled takings, its parent the batch) before this returns, then carried
    /// out in the background, a few at a time. A retried batch creates nothing twice.
    pub async fn create_payout_batch(
        self: &Arc<Self>,
        tenant: &str,
        request: PayoutBatchRequest,
    ) -> Result<OrderId, ExecError> {
        check_id("reference", &request.reference)?;
        if request.items.is_empty() || request.items.len() > PAYOUT_BATCH_ITEMS_MAX {
            return Err(ExecError::Invalid {
                field: "items",
                message: format!("1 to {PAYOUT_BATCH_ITEMS_MAX} items"),
            });
        }
        let mut references = HashSet::new();
        for item in &request.items {
            check_id("items.reference", &item.reference)?;
            check_amount(item.amount)?;
            check_bank_account("items.bank_account", &item.bank_account)?;
            if !references.insert(item.reference.as_str()) {
                return Err(ExecError::Refused {
                    field: "items.reference",
                    message: format!("{} appears twice", item.reference),
                });
            }
        }
        self.party_with(tenant, PartyKind::Merchant, &request.merchant, request.asset)?;
        self.ensure_asset(request.asset).await?;
        let batch = payout_batch_id(tenant, &request.merchant, &request.reference);
        let key = party_key(tenant, &request.merchant);
        let now_ms = self.clock.now_ms();
        let mut created = Vec::new();
        for item in request.items {
            let id =
                derive_order_id(tenant, OrderKind::Withdrawal, batch.as_str(), &item.reference);
            let print = fingerprint(&[
                &request.merchant,
                &item.bank_account,
                request.asset.as_str(),
                &item.amount.minor().to_string(),
            ]);
            let withdrawal =
                Withdrawal::new(id, key.clone(), item.bank_account, request.asset, item.amount)
                    .from_merchant();
            let record = OrderRecord {
                tenant: tenant.to_owned(),
                reference: item.reference,
                request_fingerprint: print,
                parent: Some(batch.clone()),
                order: submitted(Order::Withdrawal(withdrawal)),
                version: 1,
                created_at_ms: now_ms,
                updated_at_ms: now_ms,
            };
            match self.store.insert(&record)? {
                Inserted::Created => created.push(record),
                Inserted::Existing(existing) => {
                    self.existing(*existing, &record.request_fingerprint)?;
                }
            }
        }
        self.counters.orders_created.fetch_add(created.len() as u64, Ordering::Relaxed);
        let executor = Arc::clone(self);
        let run = async move {
            let gate = Arc::new(tokio::sync::Semaphore::new(PAYOUT_BATCH_CONCURRENCY));
            let mut items = tokio::task::JoinSet::new();
            for record in created {
                let (executor, gate) = (executor.clone(), gate.clone());
                items.spawn(async move {
                    let _permit = gate.acquire_owned().await;
                    let id = record.id().clone();
                    if let Err(error) = executor.drive(&id).await {
                        // Inspection resumes it.
                        tracing::warn!(order = %id, %error, "payout item interrupted");
                    }
                });
            }
            while items.join_next().await.is_some() {}
        };
        let mut batches = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        while batches.try_join_next().is_some() {}
        batches.spawn(run);
        Ok(batch)
    }

    /// Waits up to `grace` for the payout batches still being carried out, then stops the
    /// rest. Stopping one is safe: every item is stored before it is driven, each effect is
    /// idempotent, and inspection resumes what was left.
    pub async fn finish_batches(&self, grace: std::time::Duration) {
        let mut batches =
            std::mem::take(&mut *self.batches.lock().unwrap_or_else(|p| p.into_inner()));
        let all = async { while batches.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                left = batches.len(),
                "payout batches still running at shutdown; inspection resumes their items"
            );
        }
    }

    /// A payout batch's items, oldest first.
    ///
    /// See [`PayoutBatchTotals::of`] for what they add up to.
    pub fn payout_batch(&self, tenant: &str, id: &str) -> Result<Vec<OrderRecord>, ExecError> {
        let missing = || ExecError::OrderNotFound(id.to_owned());
        let batch = OrderId::new(id).map_err(|_| missing())?;
        let items: Vec<OrderRecord> =
            self.store.children_of(&batch)?.into_iter().filter(|r| r.tenant == tenant).collect();
        if items.is_empty() {
            return Err(missing());
        }
        Ok(items)
    }

    /// The cut-off of the merchant's latest succeeded settlement in `asset`: payments made
    /// before it are in its settled takings.
    pub(super) fn settled_before(
        &self,
        tenant: &str,
        merchant_key: &str,
        asset: AssetCode,
    ) -> Result<Option<u64>, ExecError> {
        let latest = self.store.list(&crate::port::OrderQuery {
            tenant: tenant.to_owned(),
            kind: Some(OrderKind::Settlement),
            status: Some("succeeded".into()),
            merchant: Some(merchant_key.to_owned()),
            limit: 16,
            ..Default::default()
        })?;
        Ok(latest
            .iter()
            .filter_map(|record| match &record.order {
                Order::Settlement(settlement) if settlement.asset == asset => {
                    Some(settlement.cutoff_ms)
                }
                _ => None,
            })
            .max())
    }

    /// Settles a merchant's takings in `asset` up to its T+N cut-off (结算): one settlement
    /// per merchant, asset and cut-off day, so running it again the same day returns the
    /// same settlement. `None` when there is nothing to settle.
    pub async fn settle(
        &self,
        tenant: &str,
        merchant: &str,
        asset: AssetCode,
    ) -> Result<Option<Placed>, ExecError> {
        if self.settlement_paused.load(Ordering::Relaxed) {
            return Err(ExecError::SwitchedOff("degrade/settlement".into()));
        }
        let party = self.party_with(tenant, PartyKind::Merchant, merchant, asset)?;
        let now_ms = self.clock.now_ms();
        let cutoff_ms = payments::booking::settlement_cutoff_ms(now_ms, party.settle_after_days);
        // T+0 runs whenever asked; T+N once per cut-off day.
        let scope = if party.settle_after_days == 0 { now_ms } else { cutoff_ms };
        let id = derive_order_id(
            tenant,
            OrderKind::Settlement,
            &format!("{merchant}/{}", asset.as_str()),
            &scope.to_string(),
        );
        let key = party_key(tenant, merchant);
        let print = fingerprint(&[merchant, asset.as_str(), &cutoff_ms.to_string()]);
        let mut build = |totals: crate::port::MerchantTotals| -> Option<OrderRecord> {
            let due = totals.payments_net_minor - totals.refunds_net_minor - totals.settled_minor;
            let amount = Amount::new(u64::try_from(due).ok()?).filter(|a| !a.is_zero())?;
            let order = submitted(Order::Settlement(payments::booking::Settlement {
                order: id.clone(),
                merchant: key.clone(),
                asset,
                amount,
                cutoff_ms,
                settle_after_days: party.settle_after_days,
                state: BookingState::Created,
            }));
            Some(OrderRecord {
                tenant: tenant.to_owned(),
                reference: format!("settlement-{cutoff_ms}"),
                request_fingerprint: print.clone(),
                parent: None,
                order,
                version: 1,
                created_at_ms: now_ms,
                updated_at_ms: now_ms,
            })
        };
        let record = match self.store.insert_settlement(&id, &key, asset, cutoff_ms, &mut build)? {
            GuardedInsert::Created(record) => record,
            GuardedInsert::Existing(existing) => {
                return Ok(Some(Placed { record: existing, created: false }))
            }
            GuardedInsert::Refused => return Ok(None),
        };
        self.counters.orders_created.fetch_add(1, Ordering::Relaxed);
        Ok(Some(Placed { record: self.drive_new(record).await?, created: true }))
    }

    /// Settles every merchant in every asset (the scheduled run). Returns how many
    /// settlements were made; failures are logged and retried on the next run.
    pub async fn settle_all(&self) -> u64 {
        let merchants = match self.store.parties(PartyKind::Merchant) {
            Ok(merchants) => merchants,
            Err(error) => {
                tracing::warn!(%error, "settlement run could not list merchants");
                return 0;
            }
        };
        let mut made = 0;
        for merchant in merchants {
            for asset in &merchant.assets {
                match self.settle(&merchant.tenant, &merchant.id, *asset).await {
                    Ok(Some(placed)) if placed.created => made += 1,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(merchant = %merchant.id, %error, "settlement failed")
                    }
                }
            }
        }
        made
    }
}

/// Count and sum of a set of payouts, minor units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PayoutTotal {
    pub count: u64,
    pub amount_minor: u128,
}

/// What a payout batch's items add up to, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PayoutBatchTotals {
    /// Paid by the bank.
    pub succeeded: PayoutTotal,
    /// Final and not paid: the money is back in the merchant's settled takings.
    pub failed: PayoutTotal,
    /// Not final yet.
    pub processing: PayoutTotal,
}

impl PayoutBatchTotals {
    /// The totals of `items` (a batch's payouts). A payout counts as succeeded by its typed
    /// state, never by a status string.
    pub fn of(items: &[OrderRecord]) -> PayoutBatchTotals {
        let mut totals = PayoutBatchTotals::default();
        for item in items {
            let paid = matches!(
                &item.order,
                Order::Withdrawal(payout)
                    if matches!(payout.state, payments::withdrawal::WithdrawalState::Succeeded { .. })
            );
            let slot = match (item.order.is_final(), paid) {
                (true, true) => &mut totals.succeeded,
                (true, false) => &mut totals.failed,
                (false, _) => &mut totals.processing,
            };
            slot.count += 1;
            slot.amount_minor += u128::from(item.order.amount().minor());
        }
        totals
    }

    /// Whether every item is final.
    pub fn completed(&self) -> bool {
        self.processing.count == 0
    }
}

#[cfg(test)]
mod tests {
    use channels::{ChannelId, Settled};
    use money::{Amount, AssetCode};
    use payments::withdrawal::{PayoutSource, Withdrawal, WithdrawalState};
    use payments::{Order, OrderId};

    use super::*;

    fn payout(id: &str, minor: u64, state: WithdrawalState) -> OrderRecord {
        let order = Order::Withdrawal(Withdrawal {
            order: OrderId::new(id).unwrap(),
            customer: "m".into(),
            source: PayoutSource::MerchantSettled,
            bank_account: "acct".into(),
            asset: AssetCode::new("CNY").unwrap(),
            amount: Amount::new(minor).unwrap(),
            refused_by: Vec::new(),
            state,
        });
        OrderRecord {
            tenant: "t".into(),
            reference: id.into(),
            request_fingerprint: String::new(),
            parent: None,
            order,
            version: 1,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn a_batch_adds_up_by_typed_outcome() {
        let bank = ChannelId::new("bank_a").unwrap();
        let settled = Settled { channel_ref: "r".into(), fee: Amount::ZERO };
        let items = [
            payout(
                "po_1",
                100,
                WithdrawalState::Succeeded { channel: bank.clone(), settled: settled.clone() },
            ),
            payout("po_2", 200, WithdrawalState::Succeeded { channel: bank.clone(), settled }),
            payout("po_3", 40, WithdrawalState::Failed { channel: None, reason: "x".into() }),
            payout("po_4", 7, WithdrawalState::Paying { channel: bank }),
        ];
        let totals = PayoutBatchTotals::of(&items);
        assert_eq!(totals.succeeded, PayoutTotal { count: 2, amount_minor: 300 });
        assert_eq!(totals.failed, PayoutTotal { count: 1, amount_minor: 40 });
        assert_eq!(totals.processing, PayoutTotal { count: 1, amount_minor: 7 });
        assert!(!totals.completed());
        assert!(PayoutBatchTotals::of(&items[..3]).completed());
    }
}
