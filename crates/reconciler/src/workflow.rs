//! A break's life after a run found it: assign, propose a resolution, approve or reject
//! (maker–checker), and book the resolution as a new balanced entry. Every change is stored
//! with an event in the break's audit trail; a break is `resolving` before its postings are
//! submitted, so a crash between the two is finished by [`Reconciler::resume`].

use channels::ChannelId;
use money::Amount;
use recon::breaks::{resolution_postings, BreakState, Resolution};
use serde_json::json;

use crate::port::{BreakEvent, BreakRecord, LossRecord, Proposal, RegisterEntry, Updated};
use crate::postings::{self, BUSINESS_CODE_RECON_RESOLUTION};
use crate::{ReconError, Reconciler};

/// Breaks finished per call of [`Reconciler::resume`].
const RESUME_PAGE: usize = 256;

impl Reconciler {
    pub fn get_break(&self, id: &str) -> Result<BreakRecord, ReconError> {
        self.store.get_break(id)?.ok_or_else(|| ReconError::BreakNotFound(id.to_owned()))
    }

    /// Gives an open break to `assignee`.
    pub async fn assign(
        &self,
        id: &str,
        assignee: &str,
        actor: &str,
    ) -> Result<BreakRecord, ReconError> {
        let _serial = self.serial.lock().await;
        let mut record = self.get_break(id)?;
        if !matches!(record.state, BreakState::Open | BreakState::Assigned) {
            return Err(state_error(&record, "assign", "open or assigned"));
        }
        let expected = record.version;
        record.state = BreakState::Assigned;
        record.assignee = Some(assignee.to_owned());
        let event = self.event(&record, actor, "assigned", json!({ "assignee": assignee }));
        self.write(&mut record, expected, &event, &RegisterEntry::None)?;
        Ok(record)
    }

    /// Proposes `resolution`. Below the approval threshold (and never for a write-off) it
    /// is booked at once; otherwise it waits for another key's approval.
    pub async fn propose(
        &self,
        id: &str,
        resolution: Resolution,
        reason: &str,
        actor: &str,
    ) -> Result<BreakRecord, ReconError> {
        let guard = self.serial.lock().await;
        let mut record = self.get_break(id)?;
        if !matches!(record.state, BreakState::Open | BreakState::Assigned) {
            return Err(state_error(&record, "propose", "open or assigned"));
        }
        if resolution.is_system() {
            return Err(recon::breaks::ResolutionRefused::SystemOnly {
                resolution: resolution.name(),
            }
            .into());
        }
        // Checked now, so a proposal that could never be booked is refused to its maker
        // (a `credit_customer` naming nobody must find the order's customer now, not fail
        // at booking and leave the break stuck in `resolving`).
        self.with_customer(&record, resolution.clone())?;
        resolution_postings(record.parts, record.tx_type, &resolution)?;
        if let Resolution::Recover { loss_id } = &resolution {
            self.check_recovery(loss_id, &record)?;
        }
        let needs_approval = self.config.policy.needs_approval(record.parts, &resolution);
        let expected = record.version;
        record.proposal = Some(Proposal {
            resolution: resolution.clone(),
            reason: reason.to_owned(),
            maker: actor.to_owned(),
            approver: None,
            proposed_at_ms: self.clock.now_ms(),
        });
        record.state =
            if needs_approval { BreakState::PendingApproval } else { BreakState::Resolving };
        let event = self.event(
            &record,
            actor,
            "proposed",
            json!({ "resolution": resolution, "reason": reason, "needs_approval": needs_approval }),
        );
        self.write(&mut record, expected, &event, &RegisterEntry::None)?;
        drop(guard);
        if needs_approval {
            Ok(record)
        } else {
            self.finish(record).await
        }
    }

    /// A second key approves the pending resolution, which is then booked.
    pub async fn approve(&self, id: &str, actor: &str) -> Result<BreakRecord, ReconError> {
        let guard = self.serial.lock().await;
        let mut record = self.get_break(id)?;
        if record.state != BreakState::PendingApproval {
            return Err(state_error(&record, "approve", "pending_approval"));
        }
        let Some(proposal) = record.proposal.as_mut() else {
            return Err(state_error(&record, "approve", "a proposal"));
        };
        if proposal.maker == actor {
            return Err(ReconError::ApproverIsMaker);
        }
        proposal.approver = Some(actor.to_owned());
        let expected = record.version;
        record.state = BreakState::Resolving;
        let event = self.event(&record, actor, "approved", json!({}));
        self.write(&mut record, expected, &event, &RegisterEntry::None)?;
        drop(guard);
        self.finish(record).await
    }

    /// Turns the pending resolution down: the break is open (or assigned) again.
    pub async fn reject(
        &self,
        id: &str,
        reason: &str,
        actor: &str,
    ) -> Result<BreakRecord, ReconError> {
        let _serial = self.serial.lock().await;
        let mut record = self.get_break(id)?;
        if record.state != BreakState::PendingApproval {
            return Err(state_error(&record, "reject", "pending_approval"));
        }
        let expected = record.version;
        let proposal = record.proposal.take();
        record.state =
            if record.assignee.is_some() { BreakState::Assigned } else { BreakState::Open };
        let event = self.event(
            &record,
            actor,
            "rejected",
            json!({ "reason": reason, "proposal": proposal }),
        );
        self.write(&mut record, expected, &event, &RegisterEntry::None)?;
        Ok(record)
    }

    /// Books what a crash left `resolving`; returns how many breaks it finished.
    pub async fn resume(&self) -> Result<usize, ReconError> {
        let mut finished = 0;
        for record in self.store.resolving(RESUME_PAGE)? {
            match self.finish(record).await {
                Ok(_) => finished += 1,
                Err(error) => tracing::warn!(%error, "could not finish a break's resolution"),
            }
        }
        Ok(finished)
    }

    /// Resolves a break without a person: a newer statement no longer shows it.
    pub(crate) async fn resolve_by_system(
        &self,
        mut record: BreakRecord,
        resolution: Resolution,
        run_id: &str,
    ) -> Result<BreakRecord, ReconError> {
        let expected = record.version;
        record.proposal = Some(Proposal {
            resolution: resolution.clone(),
            reason: format!("run {run_id}"),
            maker: "system".into(),
            approver: None,
            proposed_at_ms: self.clock.now_ms(),
        });
        record.state = BreakState::Resolving;
        let event = self.event(&record, "system", "proposed", json!({ "resolution": resolution }));
        self.write(&mut record, expected, &event, &RegisterEntry::None)?;
        self.finish(record).await
    }

    /// Books the decided resolution of a `resolving` break, then marks it resolved (with
    /// its loss-register entry). A refused booking (a closed wallet, say) returns the break
    /// to its operator with the ledger's code.
    async fn finish(&self, mut record: BreakRecord) -> Result<BreakRecord, ReconError> {
        let Some(proposal) = record.proposal.clone() else {
            return Err(state_error(&record, "finish", "a proposal"));
        };
        let resolution = self.with_customer(&record, proposal.resolution.clone())?;
        let postings = resolution_postings(record.parts, record.tx_type, &resolution)?;
        // Checked again at booking: two recoveries of one loss may both have been approved.
        if let Resolution::Recover { loss_id } = &resolution {
            if let Err(error) = self.check_recovery(loss_id, &record) {
                return self.send_back(record, &resolution, error.code());
            }
        }
        let channel = ChannelId::new(&record.channel)
            .map_err(|_| ReconError::ChannelNotFound(record.channel.clone()))?;
        let open = postings::open_accounts(&postings, &channel, record.currency);
        let group = postings::transfers(
            &postings,
            &record.id,
            &postings::step(&format!("resolve:{}", resolution.name()), record.revision),
            BUSINESS_CODE_RECON_RESOLUTION,
            &channel,
            record.currency,
        );
        let refused = self.post(open, group).await?;
        let _serial = self.serial.lock().await;
        // Re-read: the version may have moved (another node finished it).
        let current = self.get_break(&record.id)?;
        if current.state != BreakState::Resolving {
            return Ok(current);
        }
        record = current;
        let expected = record.version;
        if let Some(code) = refused {
            return self.send_back(record, &resolution, code);
        }
        let now_ms = self.clock.now_ms();
        let register = match &resolution {
            Resolution::WriteOff => RegisterEntry::Loss(LossRecord {
                id: format!("loss_{}", record.id.trim_start_matches("brk_")),
                break_id: record.id.clone(),
                channel: record.channel.clone(),
                business_day: record.business_day,
                currency: record.currency,
                amount: amount_of(record.parts.amount_minor),
                cause: record.class,
                order_id: record.order_id.clone(),
                reason: proposal.reason.clone(),
                maker: proposal.maker.clone(),
                approver: proposal.approver.clone(),
                written_off_at_ms: now_ms,
                recovered: Amount::ZERO,
            }),
            Resolution::Recover { loss_id } => RegisterEntry::Recovery {
                loss_id: loss_id.clone(),
                amount: amount_of(record.parts.amount_minor),
            },
            _ => RegisterEntry::None,
        };
        record.state = BreakState::Resolved;
        record.resolved_at_ms = Some(now_ms);
        let event = self.event(
            &record,
            "system",
            "resolved",
            json!({ "resolution": resolution, "postings": postings }),
        );
        self.write(&mut record, expected, &event, &register)?;
        Ok(record)
    }

    /// Returns a `resolving` break to its operator: the resolution could not be booked
    /// (`code` says why), and nothing was.
    fn send_back(
        &self,
        mut record: BreakRecord,
        resolution: &Resolution,
        code: &str,
    ) -> Result<BreakRecord, ReconError> {
        let expected = record.version;
        record.state =
            if record.assignee.is_some() { BreakState::Assigned } else { BreakState::Open };
        record.proposal = None;
        let event = self.event(
            &record,
            "system",
            "resolution_refused",
            json!({ "resolution": resolution, "code": code }),
        );
        self.write(&mut record, expected, &event, &RegisterEntry::None)?;
        Ok(record)
    }

    /// `credit_customer` without a customer takes the order's.
    fn with_customer(
        &self,
        record: &BreakRecord,
        resolution: Resolution,
    ) -> Result<Resolution, ReconError> {
        match resolution {
            Resolution::CreditCustomer { customer } if customer.is_empty() => {
                let order = record
                    .order_id
                    .as_deref()
                    .and_then(|id| payments::OrderId::new(id).ok())
                    .ok_or(ReconError::CustomerNeeded)?;
                let stored = self.orders.get(&order)?.ok_or(ReconError::CustomerNeeded)?;
                let customer = stored.order.customer();
                if customer.is_empty() {
                    return Err(ReconError::CustomerNeeded);
                }
                Ok(Resolution::CreditCustomer { customer: customer.to_owned() })
            }
            other => Ok(other),
        }
    }

    fn check_recovery(&self, loss_id: &str, record: &BreakRecord) -> Result<(), ReconError> {
        let loss =
            self.store.loss(loss_id)?.ok_or_else(|| ReconError::LossNotFound(loss_id.into()))?;
        let left = loss.amount.minor().saturating_sub(loss.recovered.minor());
        let amount = record.parts.amount_minor.unsigned_abs();
        if loss.currency != record.currency || amount > left {
            return Err(ReconError::RecoveryExceedsLoss {
                loss_id: loss_id.to_owned(),
                amount: amount.to_string(),
            });
        }
        Ok(())
    }

    fn event(
        &self,
        record: &BreakRecord,
        actor: &str,
        action: &str,
        detail: serde_json::Value,
    ) -> BreakEvent {
        BreakEvent {
            break_id: record.id.clone(),
            at_ms: self.clock.now_ms(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            detail,
        }
    }

    fn write(
        &self,
        record: &mut BreakRecord,
        expected: u64,
        event: &BreakEvent,
        register: &RegisterEntry,
    ) -> Result<(), ReconError> {
        record.version = expected + 1;
        record.updated_at_ms = event.at_ms;
        match self.store.update_break(record, expected, event, register)? {
            Updated::Written => Ok(()),
            Updated::Stale => Err(ReconError::Contended),
        }
    }
}

fn state_error(record: &BreakRecord, action: &'static str, needs: &'static str) -> ReconError {
    ReconError::BreakState { state: record.state.as_str(), action, needs }
}

/// The magnitude of a break's part as an amount (parts are bounded by amounts, so it fits).
fn amount_of(part: i64) -> Amount {
    Amount::new(part.unsigned_abs()).unwrap_or(Amount::MAX)
}
