//! What an incident is about: a place (a school's alarm), a person (a watchlist hit), and
//! the sources to come (a vehicle on a hotlist). A new alert source adds a variant here;
//! the dispatch core, the record and the console read the subject, not a field per source.

use serde::{Deserialize, Serialize};

use crate::ids::{PersonId, SiteId};
use crate::model::Danger;

/// The site an incident is at, as units and consoles see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteRef {
    pub id: SiteId,
    pub name: String,
    pub room: Option<String>,
}

/// The watchlisted person a face incident is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WantedRef {
    pub person_id: PersonId,
    pub name: String,
    pub danger: Danger,
    /// The legal basis or case reference the person is on the list under.
    pub legal_basis: String,
}

/// What an incident is about. One open incident per subject: a second alarm at the same
/// school, or the same person seen again, joins the open one.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    Site(SiteRef),
    Person(WantedRef),
}

/// The subject's kind, as the record names it (`incidents.subject_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    Site,
    Person,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Site => "site",
            SubjectKind::Person => "person",
        }
    }
}

/// A subject's identity: two incidents with the same key are about the same thing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubjectKey {
    Site(SiteId),
    Person(PersonId),
}

impl Subject {
    pub fn kind(&self) -> SubjectKind {
        match self {
            Subject::Site(_) => SubjectKind::Site,
            Subject::Person(_) => SubjectKind::Person,
        }
    }

    pub fn key(&self) -> SubjectKey {
        match self {
            Subject::Site(s) => SubjectKey::Site(s.id.clone()),
            Subject::Person(p) => SubjectKey::Person(p.person_id.clone()),
        }
    }

    /// The subject's id as text (the site's or the person's), for the record.
    pub fn id(&self) -> &str {
        match self {
            Subject::Site(s) => s.id.as_str(),
            Subject::Person(p) => p.person_id.as_str(),
        }
    }

    pub fn site(&self) -> Option<&SiteRef> {
        match self {
            Subject::Site(s) => Some(s),
            _ => None,
        }
    }

    pub fn person(&self) -> Option<&WantedRef> {
        match self {
            Subject::Person(p) => Some(p),
            _ => None,
        }
    }
}

/// The subject inside a snapshot's JSON, as contract v1 has it: `site` (null when the
/// incident is not at a site) and `wanted` (absent unless it is about a person). Records
/// written before the subject existed read the same way.
pub mod fields {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{SiteRef, Subject, WantedRef};

    #[derive(Serialize)]
    struct Out<'a> {
        site: Option<&'a SiteRef>,
        #[serde(skip_serializing_if = "Option::is_none")]
        wanted: Option<&'a WantedRef>,
    }

    #[derive(Deserialize)]
    struct In {
        #[serde(default)]
        site: Option<SiteRef>,
        #[serde(default)]
        wanted: Option<WantedRef>,
    }

    pub fn serialize<S: Serializer>(s: &Subject, ser: S) -> Result<S::Ok, S::Error> {
        Out { site: s.site(), wanted: s.person() }.serialize(ser)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Subject, D::Error> {
        let i = In::deserialize(de)?;
        match (i.wanted, i.site) {
            (Some(p), _) => Ok(Subject::Person(p)),
            (None, Some(s)) => Ok(Subject::Site(s)),
            (None, None) => Err(serde::de::Error::custom("an incident needs a site or a wanted person")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Holder {
        n: u8,
        #[serde(flatten, with = "fields")]
        subject: Subject,
    }

    fn site() -> Subject {
        Subject::Site(SiteRef { id: SiteId::parse("school-1").unwrap(), name: "No. 1".into(), room: None })
    }

    fn person() -> Subject {
        Subject::Person(WantedRef {
            person_id: PersonId::parse("p-1").unwrap(),
            name: "A".into(),
            danger: Danger::High,
            legal_basis: "warrant 1".into(),
        })
    }

    #[test]
    fn a_site_is_written_as_site_and_a_person_as_wanted_beside_a_null_site() {
        let s = serde_json::to_value(Holder { n: 1, subject: site() }).unwrap();
        assert_eq!(s["site"]["id"], "school-1");
        assert!(s.get("wanted").is_none(), "{s}");
        let p = serde_json::to_value(Holder { n: 1, subject: person() }).unwrap();
        assert!(p["site"].is_null() && p.as_object().unwrap().contains_key("site"), "{p}");
        assert_eq!(p["wanted"]["person_id"], "p-1");
    }

    #[test]
    fn both_read_back_and_a_record_with_neither_is_refused() {
        for subject in [site(), person()] {
            let text = serde_json::to_string(&Holder { n: 1, subject: subject.clone() }).unwrap();
            let back: Holder = serde_json::from_str(&text).unwrap();
            assert_eq!(back.subject, subject);
            assert_eq!(back.subject.key(), subject.key());
        }
        assert!(serde_json::from_str::<Holder>(r#"{"n":1,"site":null}"#).is_err());
    }

    #[test]
    fn kind_and_id_name_the_subject_for_the_record() {
        assert_eq!((site().kind().as_str(), site().id()), ("site", "school-1"));
        assert_eq!((person().kind().as_str(), person().id()), ("person", "p-1"));
    }
}
