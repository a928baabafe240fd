//! What the incident's units tell it: answers to offers, progress, a tablet gone or back.

use super::*;

impl Handler<OfferAnswer> for Incident {
    type Result = Result<Recorded, Refusal>;

    fn handle(&mut self, msg: OfferAnswer, ctx: &mut Self::Context) -> Self::Result {
        if let Some(t) = self.timers.remove(&msg.offer_id) {
            ctx.cancel_future(t);
        }
        let (event, how, detail) = match msg.answer {
            Answer::Accept => {
                let fx = self.dispatch.on_accept(msg.offer_id)?;
                self.record_at(msg.received, "reply_accept", Some(msg.unit), None, None);
                let done = self.recorded();
                self.apply(fx, ctx);
                return Ok(done);
            }
            Answer::Decline { reason } => ("reply_decline", OfferEnd::Declined, reason),
            Answer::Gone => ("unit_offline", OfferEnd::UnitGone, None),
        };
        let fx = self.dispatch.on_offer_ended(msg.offer_id, how)?;
        self.record_at(msg.received, event, Some(msg.unit), None, detail);
        let done = self.recorded();
        self.apply(fx, ctx);
        Ok(done)
    }
}

impl Handler<UnitProgress> for Incident {
    type Result = Result<Recorded, DispatchError>;

    fn handle(&mut self, msg: UnitProgress, ctx: &mut Self::Context) -> Self::Result {
        let fx = self.dispatch.on_progress(&msg.unit, msg.progress)?;
        let event = match msg.progress {
            Progress::Accepted => "accepted",
            Progress::EnRoute => "en_route",
            Progress::OnScene => "on_scene",
            Progress::Cleared => "unit_cleared",
        };
        self.record_at(msg.received, event, Some(msg.unit), None, None);
        let done = self.recorded();
        self.apply(fx, ctx);
        Ok(done)
    }
}

impl Handler<UnitAway> for Incident {
    type Result = ();

    fn handle(&mut self, msg: UnitAway, _: &mut Self::Context) {
        if self.dispatch.assigned().iter().any(|a| a.unit == msg.unit) {
            self.away.insert(msg.unit);
        }
    }
}

impl Handler<Remind> for Incident {
    type Result = ();

    fn handle(&mut self, msg: Remind, ctx: &mut Self::Context) {
        self.away.remove(&msg.unit);
        if let Some(p) = self.dispatch.pending().iter().find(|p| p.unit == msg.unit).cloned() {
            let Some(expires_at) = self.expiry.get(&p.offer_id).copied() else { return };
            if expires_at <= Utc::now() {
                return;
            }
            let offer = self.offer_out(p.offer_id, &p.unit, p.distance_m, p.eta_s, expires_at);
            tracing::info!(incident_id = %self.id, unit_id = %p.unit, offer_id = %p.offer_id, "offer sent again");
            self.outbox.send(Notify::Offer { unit: p.unit, offer });
        } else if self.dispatch.assigned().iter().any(|a| a.unit == msg.unit) {
            self.publish(ctx);
        }
    }
}

impl Handler<Settled> for Incident {
    type Result = MessageResult<Settled>;

    fn handle(&mut self, _: Settled, ctx: &mut Self::Context) -> Self::Result {
        let done = self.recorded();
        self.publish(ctx);
        MessageResult(done)
    }
}
