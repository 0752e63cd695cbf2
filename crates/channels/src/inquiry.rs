//! Status inquiry (调单): every request whose outcome is unknown or still processing gets a
//! durable task that asks the channel, with backoff, until the answer is final, and then hands
//! that answer to the task's owner (an order, a payout item). Callbacks from the channel
//! resolve the same task, whichever comes first; both paths are idempotent.
//!
//! When the attempts run out the task is escalated to an operator and stays unknown. It is
//! never assumed failed: a payout the bank did execute, marked failed and refunded, is money
//! lost twice. An escalated task is still asked, on a slow schedule
//! ([`InquiryPolicy::escalated_delay_ms`], hourly by default), until the bank answers — a bank
//! down for a day then finishes its orders by itself when it is back — and an operator can
//! have it asked now ([`InquiryStore::ask_now`]). A callback can still resolve it.
//!
//! Delivery to the owner is at least once: the resolved outcome is stored first, delivered,
//! then marked delivered, so a crash in between delivers it again (owners are idempotent).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::channel::BoxFuture;
use crate::gateway::{Gateway, Millis};
use crate::model::{ChannelId, FailureReason, Inquiry, Operation, Outcome, RequestId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum InquiryState {
    /// Still asking.
    Open,
    /// Final; `delivered` once the owner has it.
    Resolved { outcome: Outcome, delivered: bool },
    /// Attempts ran out; an operator must look. Still unknown, still resolvable.
    Escalated { detail: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InquiryTask {
    pub channel: ChannelId,
    pub operation: Operation,
    pub request_id: RequestId,
    /// Who gets the final outcome; opaque to the gateway (`payout:42`, `order:7:debit`).
    pub owner: String,
    pub created_at_ms: u64,
    pub attempts: u32,
    pub next_at_ms: u64,
    pub state: InquiryState,
}

impl InquiryTask {
    /// Still asked about: open, or escalated (on the slow schedule).
    pub fn is_asked(&self) -> bool {
        matches!(self.state, InquiryState::Open | InquiryState::Escalated { .. })
    }
}

/// Counts for metrics and the console.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct InquiryBacklog {
    pub open: u64,
    pub escalated: u64,
    pub undelivered: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InquiryError {
    #[error("inquiry store: {0}")]
    Store(String),
}

/// Durable storage of inquiry tasks, keyed by (channel, request id).
pub trait InquiryStore: Send + Sync + 'static {
    /// Stores `task` unless one exists for its key; true if stored.
    fn open(&self, task: &InquiryTask) -> Result<bool, InquiryError>;
    fn get(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
    ) -> Result<Option<InquiryTask>, InquiryError>;
    /// Open and escalated tasks due at `now_ms`, soonest first.
    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<InquiryTask>, InquiryError>;
    /// Sets an open or escalated task's attempts and next inquiry (its state stays).
    fn reschedule(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
        attempts: u32,
        next_at_ms: u64,
    ) -> Result<(), InquiryError>;
    /// Records the final outcome of an open or escalated task; false if it was already
    /// resolved (or does not exist), so a duplicate changes nothing.
    fn resolve(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
        outcome: &Outcome,
    ) -> Result<bool, InquiryError>;
    fn escalate(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
        detail: &str,
    ) -> Result<(), InquiryError>;
    /// Resolved tasks whose owner does not have the outcome yet.
    fn undelivered(&self, limit: usize) -> Result<Vec<InquiryTask>, InquiryError>;
    fn mark_delivered(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
    ) -> Result<(), InquiryError>;
    fn backlog(&self) -> Result<InquiryBacklog, InquiryError>;
    /// Escalated tasks, oldest first: what operators look at.
    fn escalated(&self, limit: usize) -> Result<Vec<InquiryTask>, InquiryError>;
    /// Makes an open or escalated task due at `now_ms` (an operator's "ask now"); false if
    /// there is no such task or it is resolved.
    fn ask_now(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
        now_ms: u64,
    ) -> Result<bool, InquiryError>;
}

/// Receives final outcomes. Must be idempotent: after a crash it may get one again.
pub trait InquiryOwner: Send + Sync + 'static {
    fn deliver<'a>(
        &'a self,
        task: &'a InquiryTask,
        outcome: &'a Outcome,
    ) -> BoxFuture<'a, Result<(), DeliveryError>>;
}

/// Why an owner did not take an outcome; the task stays undelivered and is offered again.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The task names an owner this receiver cannot have (not one of its ids).
    #[error("no such owner {0:?}")]
    NoSuchOwner(String),
    /// The owner failed to take it (its store, a conflict): its own error, kept whole.
    #[error(transparent)]
    Owner(Box<dyn std::error::Error + Send + Sync>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InquiryPolicy {
    pub first_delay_ms: u64,
    /// Each delay is this many times the one before, up to `delay_max_ms`.
    pub backoff_factor: u64,
    pub delay_max_ms: u64,
    /// After this many inquiries the task is escalated.
    pub attempts_max: u32,
    /// An escalated task is asked again this long after each answer that is not final.
    #[serde(default = "InquiryPolicy::escalated_delay_default_ms")]
    pub escalated_delay_ms: u64,
    /// A "not found" answer is final (the channel never got the request) only once the task
    /// is this old: before that the request may still arrive late. `None`: never final.
    pub not_found_final_after_ms: Option<u64>,
}

impl Default for InquiryPolicy {
    fn default() -> InquiryPolicy {
        InquiryPolicy {
            first_delay_ms: 1_000,
            backoff_factor: 2,
            delay_max_ms: 60_000,
            attempts_max: 30,
            escalated_delay_ms: InquiryPolicy::escalated_delay_default_ms(),
            not_found_final_after_ms: Some(10 * 60_000),
        }
    }
}

impl InquiryPolicy {
    fn escalated_delay_default_ms() -> u64 {
        3_600_000
    }

    /// The wait after the `attempts`-th inquiry.
    pub fn delay_ms(&self, attempts: u32) -> u64 {
        let mut delay = self.first_delay_ms;
        for _ in 1..attempts {
            delay = delay.saturating_mul(self.backoff_factor);
            if delay >= self.delay_max_ms {
                break;
            }
        }
        delay.min(self.delay_max_ms)
    }
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub asked: u64,
    pub resolved: u64,
    pub escalated: u64,
    pub delivered: u64,
}

impl InquiryBacklog {
    /// Prometheus text: the inquiry backlog by state.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# TYPE qianbao_channel_inquiry_backlog gauge");
        for (state, n) in
            [("open", self.open), ("escalated", self.escalated), ("undelivered", self.undelivered)]
        {
            let _ = writeln!(out, "qianbao_channel_inquiry_backlog{{state=\"{state}\"}} {n}");
        }
    }
}

/// Tasks handled per sweep at most.
pub const SWEEP_TASKS_MAX: usize = 256;

pub struct Inquirer {
    gateway: Arc<Gateway>,
    store: Arc<dyn InquiryStore>,
    owner: Arc<dyn InquiryOwner>,
    policy: InquiryPolicy,
    clock: Arc<dyn Millis>,
}

impl Inquirer {
    pub fn new(
        gateway: Arc<Gateway>,
        store: Arc<dyn InquiryStore>,
        owner: Arc<dyn InquiryOwner>,
        policy: InquiryPolicy,
        clock: Arc<dyn Millis>,
    ) -> Inquirer {
        Inquirer { gateway, store, owner, policy, clock }
    }

    pub fn store(&self) -> &Arc<dyn InquiryStore> {
        &self.store
    }

    /// Starts inquiring about a request whose outcome was unknown or processing. Idempotent.
    pub fn open(
        &self,
        channel: &ChannelId,
        operation: Operation,
        request_id: &RequestId,
        owner: &str,
    ) -> Result<bool, InquiryError> {
        let now_ms = self.clock.now_ms();
        self.store.open(&InquiryTask {
            channel: channel.clone(),
            operation,
            request_id: request_id.clone(),
            owner: owner.to_string(),
            created_at_ms: now_ms,
            attempts: 0,
            next_at_ms: now_ms.saturating_add(self.policy.first_delay_ms),
            state: InquiryState::Open,
        })
    }

    /// A channel's callback: resolves the task if the outcome is final, then delivers it.
    /// Returns whether this call resolved it (false for duplicates and non-final news).
    pub async fn on_callback(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
        outcome: &Outcome,
    ) -> Result<bool, InquiryError> {
        if !outcome.is_final() {
            return Ok(false);
        }
        let resolved = self.store.resolve(channel, request_id, outcome)?;
        if resolved {
            self.deliver_pending().await?;
        }
        Ok(resolved)
    }

    /// One sweep: asks about every due task, then delivers every undelivered result.
    pub async fn sweep(&self) -> Result<SweepReport, InquiryError> {
        let mut report = SweepReport::default();
        let now_ms = self.clock.now_ms();
        for task in self.store.due(now_ms, SWEEP_TASKS_MAX)? {
            report.asked += 1;
            let answer =
                self.gateway.inquire(&task.channel, task.operation, &task.request_id).await;
            let attempts = task.attempts.saturating_add(1);
            let age_ms = self.clock.now_ms().saturating_sub(task.created_at_ms);
            let final_outcome = match answer {
                Inquiry::Found(outcome) if outcome.is_final() => Some(outcome),
                Inquiry::NotFound
                    if self
                        .policy
                        .not_found_final_after_ms
                        .is_some_and(|after| age_ms >= after) =>
                {
                    Some(Outcome::failed(
                        FailureReason::NeverReceived,
                        format!("the channel has no record after {age_ms} ms"),
                    ))
                }
                _ => None,
            };
            match final_outcome {
                Some(outcome) => {
                    if self.store.resolve(&task.channel, &task.request_id, &outcome)? {
                        report.resolved += 1;
                    }
                }
                None if attempts >= self.policy.attempts_max => {
                    if task.state == InquiryState::Open {
                        let detail = format!("still not final after {attempts} inquiries");
                        tracing::warn!(
                            channel = %task.channel, request_id = %task.request_id,
                            owner = %task.owner, %detail, "inquiry escalated to an operator"
                        );
                        self.store.escalate(&task.channel, &task.request_id, &detail)?;
                        report.escalated += 1;
                    }
                    // Escalated, and still asked: slowly, until the bank answers.
                    let next_at_ms = now_ms.saturating_add(self.policy.escalated_delay_ms);
                    self.store.reschedule(&task.channel, &task.request_id, attempts, next_at_ms)?;
                }
                None => {
                    let next_at_ms = now_ms.saturating_add(self.policy.delay_ms(attempts));
                    self.store.reschedule(&task.channel, &task.request_id, attempts, next_at_ms)?;
                }
            }
        }
        report.delivered = self.deliver_pending().await?;
        Ok(report)
    }

    async fn deliver_pending(&self) -> Result<u64, InquiryError> {
        let mut delivered = 0;
        for task in self.store.undelivered(SWEEP_TASKS_MAX)? {
            let InquiryState::Resolved { outcome, .. } = &task.state else { continue };
            match self.owner.deliver(&task, outcome).await {
                Ok(()) => {
                    self.store.mark_delivered(&task.channel, &task.request_id)?;
                    delivered += 1;
                }
                Err(error) => tracing::warn!(
                    channel = %task.channel, request_id = %task.request_id, %error,
                    "owner refused an inquiry result; will deliver again"
                ),
            }
        }
        Ok(delivered)
    }

    /// Sweeps every `poll_ms` until `stop` turns true.
    pub async fn run(self: Arc<Self>, poll_ms: u64, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if let Err(error) = self.sweep().await {
                tracing::error!(%error, "inquiry sweep failed");
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(poll_ms)) => {}
            }
        }
    }
}

/// Tasks in memory: for tests and for tools that need no durability. Services use a durable
/// store (SQLite or PostgreSQL, crate `store`).
#[derive(Default)]
pub struct MemoryInquiryStore {
    tasks: Mutex<BTreeMap<(ChannelId, RequestId), InquiryTask>>,
}

impl MemoryInquiryStore {
    fn with<T>(
        &self,
        run: impl FnOnce(&mut BTreeMap<(ChannelId, RequestId), InquiryTask>) -> T,
    ) -> T {
        run(&mut self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

impl InquiryStore for MemoryInquiryStore {
    fn open(&self, task: &InquiryTask) -> Result<bool, InquiryError> {
        Ok(self.with(|tasks| {
            let key = (task.channel.clone(), task.request_id.clone());
            if tasks.contains_key(&key) {
                return false;
            }
            tasks.insert(key, task.clone());
            true
        }))
    }

    fn get(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
    ) -> Result<Option<InquiryTask>, InquiryError> {
        Ok(self.with(|tasks| tasks.get(&(channel.clone(), request_id.clone())).cloned()))
    }

    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<InquiryTask>, InquiryError> {
        Ok(self.with(|tasks| {
            let mut due: Vec<InquiryTask> = tasks
                .values()
                .filter(|t| t.is_asked() && t.next_at_ms <= now_ms)
                .cloned()
                .collect();
            due.sort_by_key(|t| t.next_at_ms);
            due.truncate(limit);
            due
        }))
    }

    fn reschedule(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
        attempts: u32,
        next_at_ms: u64,
    ) -> Result<(), InquiryError> {
        self.with(|tasks| {
            if let Some(task) = tasks.get_mut(&(channel.clone(), request_id.clone())) {
                if task.is_asked() {
                    task.attempts = attempts;
                    task.next_at_ms = next_at_ms;
                }
            }
        });
        Ok(())
    }

    fn resolve(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
        outcome: &Outcome,
    ) -> Result<bool, InquiryError> {
        Ok(self.with(|tasks| match tasks.get_mut(&(channel.clone(), request_id.clone())) {
            Some(task) if !matches!(task.state, InquiryState::Resolved { .. }) => {
                task.state = InquiryState::Resolved { outcome: outcome.clone(), delivered: false };
                true
            }
            _ => false,
        }))
    }

    fn escalate(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
        detail: &str,
    ) -> Result<(), InquiryError> {
        self.with(|tasks| {
            if let Some(task) = tasks.get_mut(&(channel.clone(), request_id.clone())) {
                if task.state == InquiryState::Open {
                    task.state = InquiryState::Escalated { detail: detail.to_string() };
                }
            }
        });
        Ok(())
    }

    fn undelivered(&self, limit: usize) -> Result<Vec<InquiryTask>, InquiryError> {
        Ok(self.with(|tasks| {
            tasks
                .values()
                .filter(|t| matches!(t.state, InquiryState::Resolved { delivered: false, .. }))
                .take(limit)
                .cloned()
                .collect()
        }))
    }

    fn mark_delivered(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
    ) -> Result<(), InquiryError> {
        self.with(|tasks| {
            if let Some(InquiryTask { state: InquiryState::Resolved { delivered, .. }, .. }) =
                tasks.get_mut(&(channel.clone(), request_id.clone()))
            {
                *delivered = true;
            }
        });
        Ok(())
    }

    fn backlog(&self) -> Result<InquiryBacklog, InquiryError> {
        Ok(self.with(|tasks| {
            tasks.values().fold(InquiryBacklog::default(), |mut backlog, task| {
                match &task.state {
                    InquiryState::Open => backlog.open += 1,
                    InquiryState::Escalated { .. } => backlog.escalated += 1,
                    InquiryState::Resolved { delivered: false, .. } => backlog.undelivered += 1,
                    InquiryState::Resolved { delivered: true, .. } => {}
                }
                backlog
            })
        }))
    }

    fn escalated(&self, limit: usize) -> Result<Vec<InquiryTask>, InquiryError> {
        Ok(self.with(|tasks| {
            let mut escalated: Vec<InquiryTask> = tasks
                .values()
                .filter(|t| matches!(t.state, InquiryState::Escalated { .. }))
                .cloned()
                .collect();
            escalated.sort_by(|a, b| {
                (a.created_at_ms, &a.channel, &a.request_id).cmp(&(
                    b.created_at_ms,
                    &b.channel,
                    &b.request_id,
                ))
            });
            escalated.truncate(limit);
            escalated
        }))
    }

    fn ask_now(
        &self,
        channel: &ChannelId,
        request_id: &RequestId,
        now_ms: u64,
    ) -> Result<bool, InquiryError> {
        Ok(self.with(|tasks| match tasks.get_mut(&(channel.clone(), request_id.clone())) {
            Some(task) if task.is_asked() => {
                task.next_at_ms = now_ms;
                true
            }
            _ => false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_renders_as_prometheus_gauges() {
        let mut out = String::new();
        InquiryBacklog { open: 3, escalated: 1, undelivered: 0 }.render_metrics(&mut out);
        assert!(out.contains("qianbao_channel_inquiry_backlog{state=\"open\"} 3\n"), "{out}");
        assert!(out.contains("qianbao_channel_inquiry_backlog{state=\"escalated\"} 1\n"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = InquiryPolicy::default();
        let delays: Vec<u64> = (1..=9).map(|n| policy.delay_ms(n)).collect();
        assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
        assert_eq!(policy.delay_ms(u32::MAX), 60_000);
    }
}
