//! Creating orders of each product: top-up, withdrawal, wallet and card payments with
//! capture and cancel, refunds, points grants, wallet transfers, and the FX table.

use super::*;

impl Executor {
    pub async fn create_topup(
        &self,
        tenant: &str,
        request: TopUpRequest,
    ) -> Result<Placed, ExecError> {
        let leg = BankLeg {
            kind: OrderKind::Topup,
            account_field: "card",
            reference: &request.reference,
            customer: &request.customer,
            account: &request.card,
            asset: request.asset,
            amount: request.amount,
        };
        let (id, print, customer) = self.bank_leg(tenant, &leg)?;
        let order =
            Order::Topup(TopUp::new(id, customer, request.card, request.asset, request.amount));
        self.create(tenant, request.reference, print, None, order).await
    }

    pub async fn create_withdrawal(
        &self,
        tenant: &str,
        request: WithdrawalRequest,
    ) -> Result<Placed, ExecError> {
        let leg = BankLeg {
            kind: OrderKind::Withdrawal,
            account_field: "bank_account",
            reference: &request.reference,
            customer: &request.customer,
            account: &request.bank_account,
            asset: request.asset,
            amount: request.amount,
        };
        let (id, print, customer) = self.bank_leg(tenant, &leg)?;
        let order = Order::Withdrawal(Withdrawal::new(
            id,
            customer,
            request.bank_account,
            request.asset,
            request.amount,
        ));
        self.create(tenant, request.reference, print, None, order).await
    }

    /// What a customer's order against its own bank account (a top-up, a withdrawal) checks
    /// and derives: the order id, the request's fingerprint, and the customer's party key.
    fn bank_leg(
        &self,
        tenant: &str,
        leg: &BankLeg<'_>,
    ) -> Result<(OrderId, String, String), ExecError> {
        check_id("reference", leg.reference)?;
        check_amount(leg.amount)?;
        check_bank_account(leg.account_field, leg.account)?;
        self.party_with(tenant, PartyKind::Customer, leg.customer, leg.asset)?;
        let id = derive_order_id(tenant, leg.kind, "", leg.reference);
        let print = fingerprint(&[
            leg.customer,
            leg.account,
            leg.asset.as_str(),
            &leg.amount.minor().to_string(),
        ]);
        Ok((id, print, party_key(tenant, leg.customer)))
    }

    pub async fn create_payment(
        &self,
        tenant: &str,
        request: PaymentRequest,
    ) -> Result<Placed, ExecError> {
        check_id("reference", &request.reference)?;
        check_amount(request.amount)?;
        // The wallet that pays is in the payment's asset, or in `pay_from` for FX.
        let funding = request.pay_from.unwrap_or(request.asset);
        self.party_with(tenant, PartyKind::Customer, &request.customer, funding)?;
        let merchant =
            self.party_with(tenant, PartyKind::Merchant, &request.merchant, request.asset)?;
        // The merchant's order number is unique per merchant.
        let id = derive_order_id(tenant, OrderKind::Payment, &request.merchant, &request.reference);
        let points = request.points.filter(|points| !points.is_zero());
        let print = fingerprint(&[
            &request.customer,
            request.asset.as_str(),
            &request.amount.minor().to_string(),
            &points.map_or(0, Amount::minor).to_string(),
            request.pay_from.as_ref().map_or("", AssetCode::as_str),
            &request.authorize_for_secs.map_or(String::new(), |secs| secs.to_string()),
        ]);
        let mut payment = Payment::new(
            id,
            party_key(tenant, &request.customer),
            party_key(tenant, &request.merchant),
            request.asset,
            request.amount,
            merchant.fee_bps,
        );
        if let Some(points) = points {
            let invalid =
                |message: &str| ExecError::Refused { field: "points", message: message.into() };
            let config =
                self.config.points.filter(|config| config.cash_asset == request.asset).ok_or_else(
                    || invalid("points pay only for payments in the points' cash asset"),
                )?;
            self.party_with(tenant, PartyKind::Customer, &request.customer, config.asset)?;
            self.ensure_asset(config.asset).await?;
            let leg = payments::booking::PointsLeg {
                asset: config.asset,
                points,
                value_minor_per_point: config.value_minor_per_point,
            };
            payment = payment
                .with_points(leg)
                .ok_or_else(|| invalid("the points are worth more than the amount"))?;
        }
        if let Some(secs) = request.authorize_for_secs {
            if secs == 0 || secs > AUTHORIZATION_SECS_MAX {
                return Err(ExecError::Invalid {
                    field: "authorize_for_secs",
                    message: format!("1 to {AUTHORIZATION_SECS_MAX} seconds"),
                });
            }
            if points.is_some() || request.pay_from.is_some_and(|asset| asset != request.asset) {
                return Err(ExecError::Refused {
                    field: "authorize_for_secs",
                    message: "an authorization pays from the wallet alone (no points, no FX)"
                        .into(),
                });
            }
            payment = payment.with_authorization(secs, merchant.fee_bps).ok_or_else(|| {
                ExecError::Refused {
                    field: "authorize_for_secs",
                    message: "not for this payment".into(),
                }
            })?;
        }
        if let Some(from_asset) = request.pay_from.filter(|asset| *asset != request.asset) {
            let invalid = |message: String| ExecError::Refused { field: "pay_from", message };
            let rate = self.fx_rate(request.asset, from_asset).ok_or_else(|| {
                invalid(format!(
                    "no rate from {} to {}",
                    from_asset.as_str(),
                    request.asset.as_str()
                ))
            })?;
            self.party_with(tenant, PartyKind::Customer, &request.customer, from_asset)?;
            self.ensure_asset(from_asset).await?;
            payment = payment
                .with_fx(from_asset, rate)
                .ok_or_else(|| invalid("cannot be combined with points, or too large".into()))?;
        }
        self.create(tenant, request.reference, print, None, Order::Payment(payment)).await
    }

    /// Captures `amount` of an authorised payment (at most what was authorised); the rest
    /// of the hold is released.
    pub async fn capture(
        &self,
        tenant: &str,
        id: &str,
        amount: Amount,
    ) -> Result<OrderRecord, ExecError> {
        check_amount(amount)?;
        let order = OrderId::new(id).map_err(|_| ExecError::OrderNotFound(id.to_owned()))?;
        let _order = self.order_locks.lock(&order).await;
        let record = self.payment(tenant, id)?;
        if let Order::Payment(payment) = &record.order {
            if payment.authorization().is_some_and(|auth| amount > auth.authorized) {
                return Err(ExecError::Refused {
                    field: "amount",
                    message: "more than was authorized".into(),
                });
            }
        }
        let (record, effects) =
            self.transition_checked(record, &Event::Capture { amount }, true).await?;
        let after = self.run(record, effects.into()).await?;
        match &after.order {
            Order::Payment(payment)
                if matches!(payment.state(), PaymentState::Authorized { .. }) =>
            {
                Err(ExecError::CaptureRefused("the ledger refused the capture".into()))
            }
            _ => Ok(after),
        }
    }

    /// Cancels an authorised payment: the hold is released.
    pub async fn cancel(&self, tenant: &str, id: &str) -> Result<OrderRecord, ExecError> {
        let order = OrderId::new(id).map_err(|_| ExecError::OrderNotFound(id.to_owned()))?;
        let _order = self.order_locks.lock(&order).await;
        let record = self.payment(tenant, id)?;
        let (record, effects) = self.transition_checked(record, &Event::Cancel, true).await?;
        self.run(record, effects.into()).await
    }

    pub(super) fn payment(&self, tenant: &str, id: &str) -> Result<OrderRecord, ExecError> {
        let record = self.get(tenant, id)?;
        if record.order.kind() != OrderKind::Payment {
            return Err(ExecError::OrderNotFound(id.to_owned()));
        }
        Ok(record)
    }

    /// A merchant is paid from the customer's bank card through a channel (收单).
    pub async fn create_card_payment(
        &self,
        tenant: &str,
        request: CardPaymentRequest,
    ) -> Result<Placed, ExecError> {
        check_id("reference", &request.reference)?;
        check_amount(request.amount)?;
        check_bank_account("card", &request.card)?;
        self.party(tenant, PartyKind::Customer, &request.customer)?;
        let merchant =
            self.party_with(tenant, PartyKind::Merchant, &request.merchant, request.asset)?;
        let id =
            derive_order_id(tenant, OrderKind::CardPayment, &request.merchant, &request.reference);
        let print = fingerprint(&[
            &request.customer,
            &request.card,
            request.asset.as_str(),
            &request.amount.minor().to_string(),
        ]);
        let flow = TopUp::new(
            id,
            party_key(tenant, &request.customer),
            request.card,
            request.asset,
            request.amount,
        )
        .paying(payments::topup::MerchantCredit {
            merchant: party_key(tenant, &request.merchant),
            fee: payments::booking::fee_for(request.amount, merchant.fee_bps),
            fee_bps: merchant.fee_bps,
        });
        self.create(tenant, request.reference, print, None, Order::CardPayment(flow)).await
    }

    /// A refund of a card payment, back to the card through the channel it came by.
    pub(super) async fn create_card_refund(
        &self,
        tenant: &str,
        request: RefundRequest,
        card: TopUp,
        payment_created_at_ms: u64,
    ) -> Result<Placed, ExecError> {
        let payment_id = request.payment.to_string();
        let (payments::topup::TopUpState::Succeeded { channel, .. }, Some(credit)) =
            (&card.state, &card.merchant)
        else {
            return Err(ExecError::NotRefundable(
                payment_id,
                "only a succeeded payment can be refunded",
            ));
        };
        let id = derive_order_id(
            tenant,
            OrderKind::CardRefund,
            request.payment.as_str(),
            &request.reference,
        );
        let print = fingerprint(&[request.payment.as_str(), &request.amount.minor().to_string()]);
        let now_ms = self.clock.now_ms();
        let from_settled = self
            .settled_before(tenant, &credit.merchant, card.asset)?
            .is_some_and(|cutoff_ms| payment_created_at_ms < cutoff_ms);
        let mut build = |totals: RefundTotals| -> Option<OrderRecord> {
            let fee_returned =
                card.refund_fee_share(request.amount, totals.refunded, totals.fee_returned)?;
            let refund = payments::card::CardRefund {
                source: Default::default(),
                from_settled,
                order: id.clone(),
                payment: card.order.clone(),
                customer: card.customer.clone(),
                merchant: credit.merchant.clone(),
                card: card.card.clone(),
                asset: card.asset,
                amount: request.amount,
                fee_returned,
                channel: channel.clone(),
                debit_request_id: card.debit_request().request_id,
                state: payments::card::CardRefundState::Created,
            };
            Some(OrderRecord {
                tenant: tenant.to_owned(),
                reference: request.reference.clone(),
                request_fingerprint: print.clone(),
                parent: Some(card.order.clone()),
                order: submitted(Order::CardRefund(refund)),
                version: 1,
                created_at_ms: now_ms,
                updated_at_ms: now_ms,
            })
        };
        let record = match self.store.insert_refund(&id, &request.payment, &mut build)? {
            GuardedInsert::Created(record) => record,
            GuardedInsert::Existing(existing) => {
                return Ok(Placed { record: self.existing(existing, &print)?, created: false })
            }
            GuardedInsert::Refused => return Err(ExecError::RefundExceedsPayment),
        };
        self.counters.orders_created.fetch_add(1, Ordering::Relaxed);
        Ok(Placed { record: self.drive_new(record).await?, created: true })
    }

    /// Returns a suspended top-up's money to the card it came from (原路退回), through the
    /// channel it came by: a card refund whose money comes from suspense (2299). For
    /// operators (any tenant's top-up); `reference` names the return (the operator's
    /// action). At most one return of a top-up is live at a time and together they never
    /// pass it (the refund guard, as for a payment's refunds); a failed return puts the
    /// money back in suspense, to be returned again.
    pub async fn return_suspended(
        &self,
        topup: &OrderId,
        reference: &str,
    ) -> Result<Placed, ExecError> {
        check_id("reference", reference)?;
        let record =
            self.store.get(topup)?.ok_or_else(|| ExecError::OrderNotFound(topup.to_string()))?;
        let not_suspended = || {
            ExecError::NotRefundable(
                topup.to_string(),
                "only a suspended top-up goes back to its card",
            )
        };
        let Order::Topup(flow) = &record.order else { return Err(not_suspended()) };
        let payments::topup::TopUpState::Suspended { channel, .. } = &flow.state else {
            return Err(not_suspended());
        };
        let tenant = record.tenant.clone();
        let id = return_order_id(&tenant, topup, reference);
        let print = fingerprint(&[topup.as_str(), &flow.amount.minor().to_string()]);
        let now_ms = self.clock.now_ms();
        let mut build = |totals: RefundTotals| -> Option<OrderRecord> {
            // The whole amount, once: nothing of it may be in another live return.
            if !totals.refunded.is_zero() {
                return None;
            }
            let refund = payments::card::CardRefund {
                order: id.clone(),
                payment: flow.order.clone(),
                customer: flow.customer.clone(),
                merchant: String::new(),
                card: flow.card.clone(),
                asset: flow.asset,
                amount: flow.amount,
                fee_returned: Amount::ZERO,
                channel: channel.clone(),
                debit_request_id: flow.debit_request().request_id,
                from_settled: false,
                source: payments::card::RefundSource::Suspense,
                state: payments::card::CardRefundState::Created,
            };
            Some(OrderRecord {
                tenant: tenant.clone(),
                reference: reference.to_owned(),
                request_fingerprint: print.clone(),
                parent: Some(flow.order.clone()),
                order: submitted(Order::CardRefund(refund)),
                version: 1,
                created_at_ms: now_ms,
                updated_at_ms: now_ms,
            })
        };
        let record = match self.store.insert_refund(&id, topup, &mut build)? {
            GuardedInsert::Created(record) => record,
            GuardedInsert::Existing(existing) => {
                return Ok(Placed { record: self.existing(existing, &print)?, created: false })
            }
            GuardedInsert::Refused => return Err(ExecError::RefundExceedsPayment),
        };
        self.counters.orders_created.fetch_add(1, Ordering::Relaxed);
        Ok(Placed { record: self.drive_new(record).await?, created: true })
    }

    /// Gives a customer points (a reward): the platform's marketing expense.
    pub async fn grant_points(
        &self,
        tenant: &str,
        customer: &str,
        reference: &str,
        points: Amount,
    ) -> Result<Placed, ExecError> {
        check_id("reference", reference)?;
        check_amount(points)?;
        let config = self.config.points.ok_or_else(|| ExecError::Refused {
            field: "points",
            message: "this platform runs no points".into(),
        })?;
        self.party_with(tenant, PartyKind::Customer, customer, config.asset)?;
        let id = derive_order_id(tenant, OrderKind::PointsGrant, "", reference);
        let print = fingerprint(&[customer, &points.minor().to_string()]);
        let order = Order::PointsGrant(payments::booking::PointsGrant {
            order: id,
            customer: party_key(tenant, customer),
            asset: config.asset,
            amount: points,
            state: BookingState::Created,
        });
        self.create(tenant, reference.to_owned(), print, None, order).await
    }

    /// Sets the rate at which payments in `asset` are funded from wallets in `funding`
    /// (minor units of `funding` per minor unit of `asset`). Logged; payments record the
    /// rate they used.
    pub fn set_fx_rate(&self, asset: AssetCode, funding: AssetCode, rate: Rate) {
        tracing::info!(asset = asset.as_str(), funding = funding.as_str(), %rate, "FX rate set");
        self.fx_rates.lock().unwrap_or_else(|p| p.into_inner()).insert((asset, funding), rate);
    }

    pub fn fx_rate(&self, asset: AssetCode, funding: AssetCode) -> Option<Rate> {
        self.fx_rates.lock().unwrap_or_else(|p| p.into_inner()).get(&(asset, funding)).copied()
    }

    /// Every rate, as (payment asset, funding asset, rate).
    pub fn fx_rates(&self) -> Vec<(AssetCode, AssetCode, Rate)> {
        let rates = self.fx_rates.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = rates.iter().map(|((a, f), r)| (*a, *f, *r)).collect();
        all.sort_by(|x, y| (x.0.as_str(), x.1.as_str()).cmp(&(y.0.as_str(), y.1.as_str())));
        all
    }

    pub fn points_config(&self) -> Option<PointsConfig> {
        self.config.points
    }

    pub async fn create_wallet_transfer(
        &self,
        tenant: &str,
        request: WalletTransferRequest,
    ) -> Result<Placed, ExecError> {
        check_id("reference", &request.reference)?;
        check_amount(request.amount)?;
        if request.from == request.to {
            return Err(ExecError::Refused {
                field: "to",
                message: "must differ from from".into(),
            });
        }
        self.party_with(tenant, PartyKind::Customer, &request.from, request.asset)?;
        self.party_with(tenant, PartyKind::Customer, &request.to, request.asset)?;
        let id = derive_order_id(tenant, OrderKind::WalletTransfer, "", &request.reference);
        let print = fingerprint(&[
            &request.from,
            &request.to,
            request.asset.as_str(),
            &request.amount.minor().to_string(),
        ]);
        let order = Order::WalletTransfer(WalletTransfer {
            order: id,
            from: party_key(tenant, &request.from),
            to: party_key(tenant, &request.to),
            asset: request.asset,
            amount: request.amount,
            state: BookingState::Created,
        });
        self.create(tenant, request.reference, print, None, order).await
    }

    /// A refund of a succeeded payment: several per payment, together never more than it.
    pub async fn create_refund(
        &self,
        tenant: &str,
        request: RefundRequest,
    ) -> Result<Placed, ExecError> {
        check_id("reference", &request.reference)?;
        check_amount(request.amount)?;
        let payment_record = self
            .store
            .get(&request.payment)?
            .filter(|record| record.tenant == tenant)
            .ok_or_else(|| ExecError::OrderNotFound(request.payment.to_string()))?;
        if let Order::CardPayment(card) = &payment_record.order {
            let created_at_ms = payment_record.created_at_ms;
            return self.create_card_refund(tenant, request, card.clone(), created_at_ms).await;
        }
        let Order::Payment(payment) = &payment_record.order else {
            return Err(ExecError::NotRefundable(request.payment.to_string(), "not a payment"));
        };
        if *payment.state() != PaymentState::Succeeded {
            return Err(ExecError::NotRefundable(
                request.payment.to_string(),
                "only a succeeded payment can be refunded",
            ));
        }
        let from_settled = self
            .settled_before(tenant, payment.merchant(), payment.asset())?
            .is_some_and(|cutoff_ms| payment_record.created_at_ms < cutoff_ms);
        let id = derive_order_id(
            tenant,
            OrderKind::Refund,
            request.payment.as_str(),
            &request.reference,
        );
        let print = fingerprint(&[request.payment.as_str(), &request.amount.minor().to_string()]);
        let now_ms = self.clock.now_ms();
        let mut build = |totals: RefundTotals| -> Option<OrderRecord> {
            let earlier = RefundedSoFar {
                amount: totals.refunded,
                fee: totals.fee_returned,
                second_leg: totals.leg_returned,
            };
            let refund = payment.refund(id.clone(), request.amount, earlier, from_settled)?;
            let order = submitted(Order::Refund(refund));
            Some(OrderRecord {
                tenant: tenant.to_owned(),
                reference: request.reference.clone(),
                request_fingerprint: print.clone(),
                parent: Some(payment.order().clone()),
                order,
                version: 1,
                created_at_ms: now_ms,
                updated_at_ms: now_ms,
            })
        };
        let record = match self.store.insert_refund(&id, &request.payment, &mut build)? {
            GuardedInsert::Created(record) => record,
            GuardedInsert::Existing(existing) => {
                return Ok(Placed { record: self.existing(existing, &print)?, created: false })
            }
            GuardedInsert::Refused => return Err(ExecError::RefundExceedsPayment),
        };
        self.counters.orders_created.fetch_add(1, Ordering::Relaxed);
        Ok(Placed { record: self.drive_new(record).await?, created: true })
    }
}

/// The fields of a customer's order against its own bank account.
struct BankLeg<'a> {
    kind: OrderKind,
    /// The request's name for the account, for errors.
    account_field: &'static str,
    reference: &'a str,
    customer: &'a str,
    account: &'a str,
    asset: AssetCode,
    amount: Amount,
}

/// The id of the card refund that returns suspended top-up `topup` of `tenant` under
/// `reference` (see [`Executor::return_suspended`]): known before it exists.
pub fn return_order_id(tenant: &str, topup: &OrderId, reference: &str) -> OrderId {
    derive_order_id(tenant, OrderKind::CardRefund, topup.as_str(), reference)
}
