//! Customers and merchants: opening a party with its ledger accounts, and reading one
//! (cached: a party never changes once open).

use ledger::model::AccountLayout;

use super::*;

impl Executor {
    /// Opens a customer (with a wallet per asset) or a merchant (with its payables per
    /// asset). Idempotent: the same request again returns the stored party.
    pub async fn open_party(&self, tenant: &str, new: NewParty) -> Result<Party, ExecError> {
        let NewParty { kind, id, name, assets, fee_bps, settle_after_days, unsettled_layout } = new;
        let (id, name) = (id.as_str(), name.as_str());
        check_id("id", id)?;
        if settle_after_days > SETTLE_AFTER_DAYS_MAX
            || (kind == PartyKind::Customer && settle_after_days != 0)
        {
            return Err(ExecError::Invalid {
                field: "settle_after_days",
                message: format!("0 to {SETTLE_AFTER_DAYS_MAX}, and only for merchants"),
            });
        }
        if name.chars().count() > PARTY_NAME_LEN_MAX {
            return Err(ExecError::Invalid {
                field: "name",
                message: format!("at most {PARTY_NAME_LEN_MAX} characters"),
            });
        }
        if assets.is_empty() || assets.len() > PARTY_ASSETS_MAX {
            return Err(ExecError::Invalid {
                field: "assets",
                message: format!("1 to {PARTY_ASSETS_MAX} assets"),
            });
        }
        if fee_bps > FEE_BPS_MAX || (kind == PartyKind::Customer && fee_bps != 0) {
            return Err(ExecError::Invalid {
                field: "fee_bps",
                message: format!("0 to {FEE_BPS_MAX}, and only for merchants"),
            });
        }
        // A layout is for the account payments credit, a merchant's; a row is the ledger's own.
        let layout_ok = match unsettled_layout {
            AccountLayout::Plain => true,
            AccountLayout::SubAccounts { .. } | AccountLayout::Buffered { .. } => {
                kind == PartyKind::Merchant && unsettled_layout.is_valid()
            }
            AccountLayout::Row { .. } => false,
        };
        if !layout_ok {
            return Err(ExecError::Invalid {
                field: "unsettled_layout",
                message: format!(
                    "plain, sub_accounts (2 to {max} rows) or buffered (1 to {max} buffers), and \
                     only for merchants",
                    max = AccountLayout::ROWS_MAX
                ),
            });
        }
        let mut assets = assets;
        assets.sort();
        assets.dedup();
        // An open party asked for with another layout: refused before the ledger, which would
        // refuse to open its accounts again under a different layout anyway.
        if let Some(existing) = self.store.get_party(tenant, kind, id)? {
            if existing.unsettled_layout != unsettled_layout {
                return Err(ExecError::PartyExistsWithDifferentFields { kind, id: id.to_owned() });
            }
        }
        let key = party_key(tenant, id);
        let mut commands = Vec::new();
        for asset in &assets {
            self.ensure_asset(*asset).await?;
            match kind {
                PartyKind::Customer => {
                    let is_points = self.config.points.is_some_and(|p| p.asset == *asset);
                    commands.push(Command::OpenAccount(if is_points {
                        points_account(&key, *asset)
                    } else {
                        wallet_account(&key, *asset)
                    }))
                }
                PartyKind::Merchant => commands.extend(
                    merchant_accounts(&key, *asset, unsettled_layout)
                        .into_iter()
                        .map(Command::OpenAccount),
                ),
            }
        }
        // Accounts first: a party the store knows always has its accounts.
        self.setup(commands).await?;
        let party = Party {
            tenant: tenant.to_owned(),
            kind,
            id: id.to_owned(),
            name: name.to_owned(),
            assets,
            fee_bps,
            settle_after_days,
            created_at_ms: self.clock.now_ms(),
            unsettled_layout,
        };
        match self.store.put_party(&party)? {
            None => Ok(party),
            Some(existing)
                if (
                    &existing.name,
                    &existing.assets,
                    existing.fee_bps,
                    existing.settle_after_days,
                    existing.unsettled_layout,
                ) == (
                    &party.name,
                    &party.assets,
                    party.fee_bps,
                    party.settle_after_days,
                    party.unsettled_layout,
                ) =>
            {
                Ok(existing)
            }
            Some(_) => Err(ExecError::PartyExistsWithDifferentFields { kind, id: id.to_owned() }),
        }
    }

    pub fn party(&self, tenant: &str, kind: PartyKind, id: &str) -> Result<Party, ExecError> {
        let key = (tenant.to_owned(), kind, id.to_owned());
        if let Some(party) = self.parties.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(party.clone());
        }
        let party = self
            .store
            .get_party(tenant, kind, id)?
            .ok_or_else(|| ExecError::PartyNotFound { kind, id: id.to_owned() })?;
        let mut cached = self.parties.lock().unwrap_or_else(|p| p.into_inner());
        if cached.len() >= PARTY_CACHE_MAX {
            cached.clear();
        }
        cached.insert(key, party.clone());
        Ok(party)
    }

    /// The party, with an account in `asset`; a merchant switched off by an operator is
    /// refused (`switched_off`).
    pub(super) fn party_with(
        &self,
        tenant: &str,
        kind: PartyKind,
        id: &str,
        asset: AssetCode,
    ) -> Result<Party, ExecError> {
        let party = self.party(tenant, kind, id)?;
        if kind == PartyKind::Merchant {
            // New business with a merchant an operator has switched off is refused; refunds to
            // its customers do not come through here and still go.
            let key = party_key(tenant, id);
            let killed = self.killed_merchants.lock().unwrap_or_else(|p| p.into_inner());
            if killed.contains(&key) {
                return Err(ExecError::SwitchedOff(format!("kill/merchant:{key}")));
            }
        }
        if !party.assets.contains(&asset) {
            return Err(ExecError::AssetNotOpened { kind, id: id.to_owned(), asset });
        }
        Ok(party)
    }
}
