//! Inspection (巡检): resume unfinished orders that have not moved for a while, send waiting
//! card refunds again when due, count the overdue; and the executor's metrics text.

use super::*;

impl Executor {
    /// One inspection pass (巡检): every order unfinished and unchanged for
    /// `inspect_after_ms` is resumed — what its state waits on is carried out again — and
    /// those still unfinished past `overdue_after_ms` are counted and logged. A card refund
    /// waiting for its channel is resumed once its next send is due, however recently it
    /// changed (nobody else drives it; the order's lock and its stored version keep two
    /// drivers apart), and the waiting refunds are counted.
    pub async fn inspect(&self, page: usize) -> InspectionReport {
        self.counters.inspections.fetch_add(1, Ordering::Relaxed);
        let now_ms = self.clock.now_ms();
        let mut report = InspectionReport::default();
        let updated_before_ms = now_ms.saturating_sub(self.config.inspect_after_ms);
        let mut waits = ChannelWaits::default();
        // Every unfinished order, page by page: orders that wait by design (authorisations,
        // escalated inquiries, refunds waiting for a channel) must not hide the ones behind
        // them. Orders changed during the pass are past `now_ms` (or listed again at most
        // once, at `now_ms`), so the listing ends.
        let mut after = None;
        let mut open = [(0u64, 0u64); OrderKind::ALL.len()];
        loop {
            let listed = match self.store.unfinished_after(now_ms, after.clone(), page.max(1)) {
                Ok(listed) => listed,
                Err(error) => {
                    tracing::warn!(%error, "inspection could not list unfinished orders");
                    report.errors += 1;
                    break;
                }
            };
            let full_page = listed.len() >= page.max(1);
            after = listed.last().map(|record| (record.updated_at_ms, record.id().clone()));
            for record in listed {
                if let Some(at) = OrderKind::ALL.iter().position(|k| *k == record.order.kind()) {
                    let age_ms = now_ms.saturating_sub(record.created_at_ms);
                    open[at] = (open[at].0 + 1, open[at].1.max(age_ms));
                }
                let due = match record.order.next_attempt_at_ms() {
                    Some(next_attempt_at_ms) => now_ms >= next_attempt_at_ms,
                    None => record.updated_at_ms <= updated_before_ms,
                };
                if !due {
                    waits.add(&record, now_ms);
                    continue;
                }
                report.examined += 1;
                if let Some(after) = self.inspect_one(record.id(), now_ms, &mut report).await {
                    waits.add(&after, now_ms);
                }
            }
            if !full_page {
                break;
            }
        }
        report.awaiting_channel = waits.seen.len() as u64;
        report.awaiting_channel_age_ms_max = waits.age_ms_max;
        if report.awaiting_channel > 0 {
            tracing::warn!(
                refunds = report.awaiting_channel,
                age_ms_max = report.awaiting_channel_age_ms_max,
                "refunds awaiting their channel (money held, sent again with backoff)"
            );
        }
        let c = &self.counters;
        *c.open_by_kind.lock().unwrap_or_else(|p| p.into_inner()) = open;
        c.overdue.store(report.overdue, Ordering::Relaxed);
        c.awaiting_channel.store(report.awaiting_channel, Ordering::Relaxed);
        c.awaiting_channel_age_ms_max.store(report.awaiting_channel_age_ms_max, Ordering::Relaxed);
        report
    }

    /// Resumes one order under its lock; the order as it was left, unless resuming failed.
    pub(super) async fn inspect_one(
        &self,
        id: &OrderId,
        now_ms: u64,
        report: &mut InspectionReport,
    ) -> Option<OrderRecord> {
        let resumed = async {
            let _order = self.order_locks.lock(id).await;
            // Read again under the lock: whoever held it may have moved the order on.
            let record =
                self.store.get(id)?.ok_or_else(|| ExecError::OrderNotFound(id.to_string()))?;
            if record.order.is_final() {
                return Ok(record);
            }
            // An order whose own deadline passed (an authorisation's expiry) is told so;
            // anything else is resumed where it stands (a refund waiting for its channel is
            // routed again by `run` once its next send is due).
            let (record, effects) = match record.order.deadline_ms() {
                Some(deadline_ms) if now_ms >= deadline_ms => {
                    self.transition(record, &Event::Deadline).await?
                }
                _ => {
                    let effects = record.order.resume();
                    (record, effects)
                }
            };
            self.run(record, effects.into()).await
        };
        match resumed.await {
            Ok(after) if after.order.is_final() => {
                report.finished += 1;
                Some(after)
            }
            Ok(after) => {
                // Waiting by design: an authorisation before its expiry; a refund waiting for
                // its channel (counted and reported on its own, with its age).
                let waiting_by_design = after.order.deadline_ms().is_some_and(|d| d > now_ms)
                    || after.order.awaiting_channel_since_ms().is_some();
                let age_ms = now_ms.saturating_sub(after.created_at_ms);
                if !waiting_by_design && age_ms > self.config.overdue_after_ms {
                    report.overdue += 1;
                    tracing::warn!(
                        order = %after.id(), status = after.order.status(), age_ms,
                        "order overdue: not final past its deadline"
                    );
                }
                Some(after)
            }
            Err(error) => {
                report.errors += 1;
                tracing::warn!(%error, "inspection could not resume an order");
                None
            }
        }
    }

    /// Prometheus text for the executor's counters.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let c = &self.counters;
        for (name, help, value) in [
            ("qianbao_orders_created_total", "Orders created.", &c.orders_created),
            ("qianbao_order_transitions_total", "Stored order state changes.", &c.transitions),
            (
                "qianbao_order_version_conflicts_total",
                "Order writes that lost a race and were re-applied.",
                &c.version_conflicts,
            ),
            (
                "qianbao_order_events_refused_total",
                "Events an order's state refused (contradicting news).",
                &c.illegal_events,
            ),
            ("qianbao_inspections_total", "Inspection passes.", &c.inspections),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        for (name, help, value) in [
            (
                "qianbao_orders_overdue",
                "Unfinished orders past their deadline at the last inspection.",
                &c.overdue,
            ),
            (
                "qianbao_refunds_awaiting_channel",
                "Card refunds waiting for their channel to come back (money held) at the last inspection.",
                &c.awaiting_channel,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        // Unfinished orders by kind and the age of the oldest, at the last inspection pass.
        let open = *c.open_by_kind.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(
            out,
            "# HELP qianbao_orders_open Unfinished orders by kind at the last inspection.\n\
             # TYPE qianbao_orders_open gauge"
        );
        for (kind, (count, _)) in OrderKind::ALL.iter().zip(open) {
            let _ = writeln!(out, "qianbao_orders_open{{kind=\"{}\"}} {count}", kind.as_str());
        }
        let _ = writeln!(
            out,
            "# HELP qianbao_orders_open_age_seconds_max How old the oldest unfinished order of \
             each kind was at the last inspection.\n# TYPE qianbao_orders_open_age_seconds_max gauge"
        );
        for (kind, (_, age_ms)) in OrderKind::ALL.iter().zip(open) {
            let _ = writeln!(
                out,
                "qianbao_orders_open_age_seconds_max{{kind=\"{}\"}} {}",
                kind.as_str(),
                channels::gateway::seconds_of_ms(age_ms)
            );
        }
        let name = "qianbao_refunds_awaiting_channel_age_seconds_max";
        let _ = writeln!(
            out,
            "# HELP {name} How long the oldest card refund waiting for its channel had waited, \
             at the last inspection.\n# TYPE {name} gauge"
        );
        let age_ms = c.awaiting_channel_age_ms_max.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name} {}", channels::gateway::seconds_of_ms(age_ms));
    }
}

/// What one inspection pass (巡检) found and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct InspectionReport {
    /// Unfinished orders looked at.
    pub examined: u64,
    /// Of those, now final.
    pub finished: u64,
    /// Still unfinished past the overdue age: an operator should look.
    pub overdue: u64,
    /// Resuming failed (ledger or store unavailable); tried again next pass.
    pub errors: u64,
    /// Card refunds waiting for their channel to come back (the money held for them).
    pub awaiting_channel: u64,
    /// How long the oldest of them has waited (0 when none waits).
    pub awaiting_channel_age_ms_max: u64,
}

/// The refunds waiting for their channel that one inspection pass saw, each once (an order
/// retried during the pass may be listed again).
#[derive(Default)]
struct ChannelWaits {
    seen: HashSet<OrderId>,
    age_ms_max: u64,
}

impl ChannelWaits {
    fn add(&mut self, record: &OrderRecord, now_ms: u64) {
        let Some(since_ms) = record.order.awaiting_channel_since_ms() else { return };
        if self.seen.insert(record.id().clone()) {
            self.age_ms_max = self.age_ms_max.max(now_ms.saturating_sub(since_ms));
        }
    }
}
