//! A dispatcher's orders: assign a unit, cancel.

use super::*;

/// What a dispatcher tells an incident to do.
#[derive(Debug, Clone)]
pub enum Order {
    /// Offer it to this unit (outside the plan's budget); with `replace`, stand that unit down.
    Assign { unit: UnitId, replace: Option<UnitId> },
    /// Close it as cancelled; the units are stood down and the buttons told.
    Cancel { reason: String },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OrderError {
    #[error(transparent)]
    Refused(#[from] DispatchError),
    #[error("unit {0} cannot take it now: not available (busy, off duty, offline) or no recent position")]
    UnitUnavailable(UnitId),
}

/// A dispatcher's order, answered with the incident as it stands after it and when that
/// is recorded.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(IncidentSnapshot, Recorded), OrderError>")]
pub struct DispatcherOrder {
    pub order: Order,
    /// The signed-in user, for the timeline.
    pub by: String,
}

impl Handler<DispatcherOrder> for Incident {
    // A cancel answers at once: the actor stops with it, and would drop a pending future.
    type Result = ActorResponse<Self, Result<(IncidentSnapshot, Recorded), OrderError>>;

    fn handle(&mut self, msg: DispatcherOrder, ctx: &mut Self::Context) -> Self::Result {
        let by = msg.by;
        match msg.order {
            Order::Cancel { reason } => {
                if !self.dispatch.state().is_open() {
                    return ActorResponse::reply(Err(DispatchError::NotOpen.into()));
                }
                self.record("cancelled_by_dispatcher", None, Some(format!("{by}: {reason}")));
                let fx = self.dispatch.cancel();
                let done = self.recorded();
                self.apply(fx, ctx);
                ActorResponse::reply(Ok((self.snapshot(), done)))
            }
            Order::Assign { unit, replace } => {
                // Refused before asking the router, and checked again when it answers.
                if !self.dispatch.state().is_open() {
                    return ActorResponse::reply(Err(DispatchError::NotOpen.into()));
                }
                if self.dispatch.holds(&unit) {
                    return ActorResponse::reply(Err(DispatchError::AlreadyOn(unit).into()));
                }
                let find = self.router.send(FindUnit { unit: unit.clone(), to: self.location });
                ActorResponse::r#async(find.into_actor(self).map(move |res, act, ctx| {
                    let found =
                        res.ok().flatten().ok_or_else(|| OrderError::UnitUnavailable(unit.clone()))?;
                    let fx = act.dispatch.assign(found.candidate.clone(), replace.as_ref())?;
                    act.units.insert(unit.clone(), found.addr);
                    match found.route {
                        Some(r) => act.routes.insert(unit.clone(), r),
                        None => act.routes.remove(&unit),
                    };
                    let detail = match &replace {
                        Some(r) => format!("by {by}, replacing {r}"),
                        None => format!("by {by}"),
                    };
                    act.record("assigned_by_dispatcher", Some(unit), Some(detail));
                    let done = act.recorded();
                    act.apply(fx, ctx);
                    Ok((act.snapshot(), done))
                }))
            }
        }
    }
}
