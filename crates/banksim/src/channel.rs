//! One simulated channel at run time: its books, its current faults, its callback URL and
//! delivery log, behind one lock. The lock is a plain mutex held only for in-memory work,
//! never across an `.await`, so each request's admission is atomic: of two concurrent
//! requests with one request id, exactly one is new and the other is its duplicate.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard, PoisonError};

use money::AssetCode;

use crate::books::{Books, Execution, Operation, OperationKind, OperationRequest, Submission};
use crate::config::ChannelConfig;
use crate::faults::{ChannelFaults, Draw, Fate, LateAnswer, OperationFaults};
use crate::ids::{ChannelName, RequestId};
use crate::signing::Secret;
use crate::throttle::{OverCapacity, TokenBucket};

/// Bound on the callback delivery log kept per channel; the oldest entries go first.
pub const DELIVERIES_KEPT_MAX: usize = 10_000;

/// What the attempt counter counts: one counter per request id and per verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Verb {
    Operation(OperationKind),
    Query,
}

pub struct Channel {
    name: ChannelName,
    secret: Secret,
    currency: AssetCode,
    state: Mutex<ChannelState>,
}

pub struct ChannelState {
    pub books: Books,
    pub faults: ChannelFaults,
    pub callback_url: Option<String>,
    pub deliveries: VecDeque<Delivery>,
    attempts: HashMap<(Verb, RequestId), u32>,
    events_created: u64,
    /// The bucket of `faults.capacity_per_s`, made when the first request meets that
    /// capacity. Kept while the capacity stays the same, so putting the same faults again
    /// (the load tool does, at every outage's edges) is not a fresh burst; a new capacity
    /// starts full.
    bucket: Option<TokenBucket>,
}

/// One attempt to deliver a callback.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    pub event_id: String,
    pub request_id: RequestId,
    /// 1 for the first attempt of an event.
    pub attempt: u32,
    /// A deliberate second delivery of an already delivered event.
    pub duplicate: bool,
    pub url: Option<String>,
    /// The receiver's status code, when it answered.
    pub http_status: Option<u16>,
    /// Why the attempt failed, when it did.
    pub error: Option<String>,
    pub at_ms: u64,
}

/// What to do with a debit, payout or refund after admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Wait `latency_ms`, then answer with the operation as it stands.
    Answer { latency_ms: u64, operation: Operation },
    /// Wait `latency_ms`, then reject: the request id belongs to a different request.
    Conflict { latency_ms: u64, existing: Operation },
    /// Wait `latency_ms + hold_ms`, then drop the connection without an answer.
    NoAnswer { latency_ms: u64, hold_ms: u64 },
    /// The operation log is full (`operations_max`).
    CapacityExceeded,
    /// Over the channel's `capacity_per_s`: refused before anything else happened.
    OverCapacity(OverCapacity),
}

/// A deferred operation to complete after `delay_ms` (a late success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferred {
    pub request_id: RequestId,
    pub delay_ms: u64,
}

/// What to do with a query after admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryPlan {
    Answer { latency_ms: u64, operation: Option<Operation> },
    NoAnswer { latency_ms: u64, hold_ms: u64 },
}

impl Channel {
    pub fn new(name: ChannelName, config: &ChannelConfig) -> Channel {
        let books = Books::new(name.clone(), config.fees, config.reserve_initial_minor);
        Channel {
            name,
            secret: config.secret.clone(),
            currency: config.currency,
            state: Mutex::new(ChannelState {
                books,
                faults: config.faults,
                callback_url: config.callback_url.clone(),
                deliveries: VecDeque::new(),
                attempts: HashMap::new(),
                events_created: 0,
                bucket: None,
            }),
        }
    }

    pub fn name(&self) -> &ChannelName {
        &self.name
    }

    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    pub fn currency(&self) -> AssetCode {
        self.currency
    }

    /// The state, for short in-memory work. A panic while holding the lock aborts the
    /// process (see `main`), so a poisoned lock is never observed in practice.
    pub fn lock(&self) -> MutexGuard<'_, ChannelState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides what happens to a debit, payout or refund and applies it to the books, all
    /// under the lock, before any waiting: what a request does to the books never depends
    /// on whether its client is still connected. The capacity limit comes first, so a
    /// request over it leaves no trace at all: not even its attempt number is used.
    pub fn admit(
        &self,
        seed: u64,
        operations_max: usize,
        request_id: RequestId,
        request: OperationRequest,
        now_ms: u64,
    ) -> (Plan, Option<Deferred>) {
        let kind = request.kind();
        let mut state = self.lock();
        if let Err(over) = state.take_capacity(now_ms) {
            return (Plan::OverCapacity(over), None);
        }
        let attempt = state.next_attempt(Verb::Operation(kind), &request_id);
        let faults: OperationFaults = *state.faults.operation(kind);
        let draw = Draw::new(seed, self.name.as_str(), kind.as_str(), request_id.as_str(), attempt);
        let decision = faults.decide(&draw);
        let latency_ms = decision.latency_ms;
        let no_answer = Plan::NoAnswer { latency_ms, hold_ms: faults.hold_ms };
        let execution = match decision.fate {
            // Not executed, not logged: the bank never saw it.
            Fate::Timeout => return (no_answer, None),
            Fate::Execute | Fate::LostResponse => Execution::Now,
            Fate::Fail(reason) => Execution::Fail(reason),
            Fate::LateSuccess => Execution::Defer,
        };
        if state.books.find(&request_id).is_none()
            && state.books.operations().len() >= operations_max
        {
            return (Plan::CapacityExceeded, None);
        }
        match state.books.submit(request_id.clone(), request, execution, attempt, now_ms) {
            Submission::Conflict(existing) => (Plan::Conflict { latency_ms, existing }, None),
            Submission::Duplicate(operation) => match decision.fate {
                // A retry is a request like any other: the network can lose its answer too.
                Fate::LostResponse => (no_answer, None),
                _ => (Plan::Answer { latency_ms, operation }, None),
            },
            Submission::New(operation) => match decision.fate {
                Fate::LostResponse => (no_answer, None),
                Fate::LateSuccess => {
                    let deferred = Deferred { request_id, delay_ms: faults.late_delay_ms };
                    let plan = match faults.late_answer {
                        LateAnswer::Processing => Plan::Answer { latency_ms, operation },
                        LateAnswer::Timeout => no_answer,
                    };
                    (plan, Some(deferred))
                }
                _ => (Plan::Answer { latency_ms, operation }, None),
            },
        }
    }

    /// Decides what happens to a status query.
    pub fn admit_query(&self, seed: u64, request_id: &RequestId) -> QueryPlan {
        let mut state = self.lock();
        let attempt = state.next_attempt(Verb::Query, request_id);
        let faults = state.faults.query;
        let draw = Draw::new(seed, self.name.as_str(), "query", request_id.as_str(), attempt);
        let decision = faults.decide_query(&draw);
        match decision.fate {
            Fate::Timeout => {
                QueryPlan::NoAnswer { latency_ms: decision.latency_ms, hold_ms: faults.hold_ms }
            }
            _ => {
                let operation = state.books.find(request_id).cloned();
                QueryPlan::Answer { latency_ms: decision.latency_ms, operation }
            }
        }
    }

    /// Executes a deferred operation; returns it with a fresh callback event id, or `None`
    /// if it was not processing.
    pub fn complete(&self, request_id: &RequestId, now_ms: u64) -> Option<(Operation, String)> {
        let mut state = self.lock();
        let operation = state.books.complete(request_id, now_ms)?;
        state.events_created += 1;
        let event_id = format!("{}-evt-{:08}", self.name, state.events_created);
        Some((operation, event_id))
    }
}

impl ChannelState {
    /// One unit of the channel's capacity for a money-moving request at `now_ms`.
    fn take_capacity(&mut self, now_ms: u64) -> Result<(), OverCapacity> {
        // `validate` refuses 0, so only "no limit" gives `None` here.
        let Some(capacity_per_s) = self.faults.capacity_per_s.and_then(NonZeroU32::new) else {
            self.bucket = None;
            return Ok(());
        };
        let bucket = match &mut self.bucket {
            Some(bucket) if bucket.capacity_per_s() == capacity_per_s => bucket,
            slot => slot.insert(TokenBucket::full(capacity_per_s, now_ms)),
        };
        bucket.take(now_ms)
    }

    fn next_attempt(&mut self, verb: Verb, request_id: &RequestId) -> u32 {
        let counter = self.attempts.entry((verb, request_id.clone())).or_insert(0);
        let attempt = *counter;
        *counter = counter.saturating_add(1);
        attempt
    }

    pub fn record_delivery(&mut self, delivery: Delivery) {
        if self.deliveries.len() >= DELIVERIES_KEPT_MAX {
            self.deliveries.pop_front();
        }
        self.deliveries.push_back(delivery);
    }
}

#[cfg(test)]
mod tests {
    use money::Amount;

    use super::*;
    use crate::books::Status;
    use crate::ids::AccountName;

    const T0_MS: u64 = 1_700_000_000_000;
    const SEED: u64 = 42;
    const OPERATIONS_MAX: usize = 1_000;

    fn id(raw: &str) -> RequestId {
        RequestId::new(raw).unwrap()
    }

    fn limit(channel: &Channel, capacity_per_s: Option<u32>) {
        channel.lock().faults = ChannelFaults { capacity_per_s, ..ChannelFaults::none() };
    }

    /// A fault-free channel limited to `capacity_per_s`, whose customer `c1` has 10 000.
    fn limited(capacity_per_s: u32) -> Channel {
        let channel = Channel::new(ChannelName::new("bank_a").unwrap(), &ChannelConfig::default());
        limit(&channel, Some(capacity_per_s));
        let c1 = AccountName::new("c1").unwrap();
        channel.lock().books.open_account(c1, Amount::new(10_000).unwrap()).unwrap();
        channel
    }

    fn debit(channel: &Channel, request_id: &str, now_ms: u64) -> Plan {
        let account = AccountName::new("c1").unwrap();
        let request = OperationRequest::Debit { account, amount: Amount::new(100).unwrap() };
        let (plan, deferred) = channel.admit(SEED, OPERATIONS_MAX, id(request_id), request, now_ms);
        assert_eq!(deferred, None, "no late successes without faults");
        plan
    }

    /// The attempt that created the operation, if the plan is to answer that it succeeded.
    fn succeeded_attempt(plan: &Plan) -> Option<u32> {
        match plan {
            Plan::Answer { operation, .. } if operation.status == Status::Succeeded => {
                Some(operation.attempt)
            }
            _ => None,
        }
    }

    fn is_over_capacity(plan: &Plan) -> bool {
        matches!(plan, Plan::OverCapacity(_))
    }

    #[test]
    fn a_request_over_capacity_leaves_no_trace_and_can_be_sent_again() {
        let channel = limited(2);
        assert_eq!(succeeded_attempt(&debit(&channel, "d1", T0_MS)), Some(0));
        assert_eq!(succeeded_attempt(&debit(&channel, "d2", T0_MS + 10)), Some(0));
        let before = channel.lock().books.balances();

        let refused = debit(&channel, "d3", T0_MS + 20);
        let expected = OverCapacity { capacity_per_s: 2, retry_after_ms: 480 };
        assert_eq!(refused, Plan::OverCapacity(expected));
        let state = channel.lock();
        assert_eq!(state.books.balances(), before, "no money moved");
        assert_eq!(state.books.operations().len(), 2, "nothing logged");
        assert!(state.attempts.keys().all(|(_, request_id)| request_id.as_str() != "d3"));
        drop(state);
        let queried = channel.admit_query(SEED, &id("d3"));
        assert!(matches!(queried, QueryPlan::Answer { operation: None, .. }), "{queried:?}");

        // Once a token is back, the same request id is a first execution: attempt 0.
        assert!(is_over_capacity(&debit(&channel, "d3", T0_MS + 499)));
        assert_eq!(succeeded_attempt(&debit(&channel, "d3", T0_MS + 500)), Some(0));
        assert_eq!(channel.lock().books.operations().len(), 3);
    }

    #[test]
    fn queries_do_not_count_and_retries_do() {
        let channel = limited(1);
        for _ in 0..10 {
            let queried = channel.admit_query(SEED, &id("d1"));
            assert!(matches!(queried, QueryPlan::Answer { .. }), "{queried:?}");
        }
        assert_eq!(succeeded_attempt(&debit(&channel, "d1", T0_MS)), Some(0));
        // A retry of a logged request reaches the bank like any request, so it counts.
        assert!(is_over_capacity(&debit(&channel, "d1", T0_MS + 1)));
    }

    #[test]
    fn the_limit_follows_the_faults() {
        let channel = limited(1);
        assert!(succeeded_attempt(&debit(&channel, "d1", T0_MS)).is_some());
        // The same capacity put again keeps the bucket: no fresh burst.
        limit(&channel, Some(1));
        assert!(is_over_capacity(&debit(&channel, "d2", T0_MS + 1)));
        // A new capacity starts with a full second's worth.
        limit(&channel, Some(3));
        let plans: Vec<Plan> =
            ["d2", "d3", "d4", "d5"].iter().map(|r| debit(&channel, r, T0_MS + 2)).collect();
        let admitted: Vec<bool> = plans.iter().map(|plan| !is_over_capacity(plan)).collect();
        assert_eq!(admitted, [true, true, true, false]);
        // No limit (what clearing the faults gives): everything is admitted.
        limit(&channel, None);
        for n in 0..50 {
            assert!(!is_over_capacity(&debit(&channel, &format!("e{n}"), T0_MS + 3)));
        }
    }
}
