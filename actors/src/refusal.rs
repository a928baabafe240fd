//! Why the domain refused something a device sent. The gateway turns each into a reject
//! message for the device, a warning and a counter.

use crate::dispatch::DispatchError;
use crate::ids::{AlarmId, IncidentId, OfferId};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("offer {0} is not held by this unit")]
    NotYourOffer(OfferId),
    #[error("this unit is not assigned to incident {0}")]
    NotYourIncident(IncidentId),
    #[error("no open alarm {0} from this button to cancel")]
    NothingToCancel(AlarmId),
    #[error("{0}")]
    Dispatch(#[from] DispatchError),
    #[error("kuzet is shutting down or overloaded; send again")]
    Unavailable,
}

impl Refusal {
    /// A short stable name, used as the counter label.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotYourOffer(_) => "not_your_offer",
            Refusal::NotYourIncident(_) => "not_your_incident",
            Refusal::NothingToCancel(_) => "nothing_to_cancel",
            Refusal::Dispatch(_) => "dispatch_rule",
            Refusal::Unavailable => "unavailable",
        }
    }
}

impl From<actix::MailboxError> for Refusal {
    fn from(e: actix::MailboxError) -> Self {
        match e {
            // The incident's actor has stopped: it ended while the message was on its way.
            actix::MailboxError::Closed => Refusal::Dispatch(DispatchError::NotOpen),
            actix::MailboxError::Timeout => Refusal::Unavailable,
        }
    }
}
