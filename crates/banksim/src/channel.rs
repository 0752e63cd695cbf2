//! One simulated channel at run time: its books, its current faults, its callback URL and
//! delivery log, behind one lock. The lock is a plain mutex held only for in-memory work,
//! never across an `.await`, so each request's admission is atomic: of two concurrent
//! requests with one request id, exactly one is new and the other is its duplicate.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use money::AssetCode;

use crate::books::{Books, Execution, Operation, OperationKind, OperationRequest, Submission};
use crate::config::ChannelConfig;
use crate::faults::{ChannelFaults, Draw, Fate, LateAnswer, OperationFaults};
use crate::ids::{ChannelName, RequestId};
use crate::signing::Secret;

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
    /// The operation log is full.
    CapacityExceeded,
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
    /// on whether its client is still connected.
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
