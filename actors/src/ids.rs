//! Identifiers. Device ids follow the MQTT contract pattern `[a-z0-9][a-z0-9-]{0,63}`
//! and can only be built through `parse`, so code past the edge never re-checks them.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a device id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("id is empty")]
    Empty,
    #[error("id is longer than 64 characters")]
    TooLong,
    #[error("id must start with a-z or 0-9 and contain only a-z, 0-9 and '-'")]
    BadCharacter,
}

/// Checks the contract's id pattern without allocating.
pub fn check_device_id(raw: &str) -> Result<(), IdError> {
    let bytes = raw.as_bytes();
    let Some(first) = bytes.first() else {
        return Err(IdError::Empty);
    };
    if bytes.len() > 64 {
        return Err(IdError::TooLong);
    }
    let ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !ok(first) || !bytes[1..].iter().all(|b| ok(b) || *b == b'-') {
        return Err(IdError::BadCharacter);
    }
    Ok(())
}

macro_rules! device_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                check_device_id(raw)?;
                Ok(Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        // Lets maps keyed by id be searched with the &str taken from a topic.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

device_id!(
    /// A school panic button.
    ButtonId
);
device_id!(
    /// A patrol unit (its officer tablet).
    UnitId
);
device_id!(
    /// A site: a school, police station or prison.
    SiteId
);
device_id!(
    /// A camera (kuzet's own pipeline, or one that detects on its own).
    CameraId
);
device_id!(
    /// A person on the watchlist.
    PersonId
);

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// Chosen by the button for each press; a redelivery carries the same one.
    AlarmId
);
uuid_id!(
    /// One incident, for its whole life.
    IncidentId
);
uuid_id!(
    /// One offer of one incident to one unit.
    OfferId
);
uuid_id!(
    /// One sighting of a watchlisted person by one camera.
    SightingId
);
uuid_id!(
    /// A face match waiting for a dispatcher's confirmation.
    ReviewId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_contract_pattern() {
        assert!(UnitId::parse("u").is_ok());
        assert!(UnitId::parse("0-unit-17").is_ok());
        assert!(UnitId::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn refuses_what_breaks_it() {
        assert_eq!(UnitId::parse(""), Err(IdError::Empty));
        assert_eq!(UnitId::parse(&"a".repeat(65)), Err(IdError::TooLong));
        for bad in ["-a", "A1", "a_b", "a/b", "a+", "a#", "ü", "a b"] {
            assert_eq!(UnitId::parse(bad), Err(IdError::BadCharacter), "{bad}");
        }
    }

    #[test]
    fn deserializing_checks_the_pattern() {
        assert!(serde_json::from_str::<ButtonId>("\"b-1\"").is_ok());
        assert!(serde_json::from_str::<ButtonId>("\"B/1\"").is_err());
    }
}
