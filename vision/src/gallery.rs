//! The watchlist as a search index: every enrolled person's embedding in one contiguous
//! matrix, searched exactly (brute force). 100k entries are 51 MB and a few milliseconds of
//! dot products; nothing approximate stands between a face and the list.

use std::collections::HashMap;

use crate::face::{cosine, Embedding, DIM};

/// One person as the index knows them.
#[derive(Debug, Clone)]
pub struct Entry {
    pub person: String,
    /// Seconds since the Unix epoch after which the entry no longer matches.
    pub expires_unix: i64,
}

/// The best match of a probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub person: String,
    pub score: f32,
    /// The highest similarity of the probe to a face a dispatcher rejected for this person on
    /// this camera, when there is one.
    pub negative: Option<f32>,
}

#[derive(Default)]
pub struct Gallery {
    entries: Vec<Entry>,
    /// `entries.len() * DIM` floats, row i is entry i's embedding.
    matrix: Vec<f32>,
    by_person: HashMap<String, usize>,
    /// Faces dispatchers rejected, by (person, camera).
    negatives: HashMap<(String, String), Vec<Embedding>>,
}

impl Gallery {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a person, or replaces their embedding and expiry.
    pub fn upsert(&mut self, person: &str, embedding: &Embedding, expires_unix: i64) {
        match self.by_person.get(person) {
            Some(&i) => {
                self.matrix[i * DIM..(i + 1) * DIM].copy_from_slice(embedding);
                self.entries[i].expires_unix = expires_unix;
            }
            None => {
                self.by_person.insert(person.to_owned(), self.entries.len());
                self.entries.push(Entry { person: person.to_owned(), expires_unix });
                self.matrix.extend_from_slice(embedding);
            }
        }
    }

    /// Takes a person off the list.
    pub fn remove(&mut self, person: &str) -> bool {
        let Some(i) = self.by_person.remove(person) else {
            return false;
        };
        let last = self.entries.len() - 1;
        self.entries.swap_remove(i);
        if i != last {
            let (head, tail) = self.matrix.split_at_mut(last * DIM);
            head[i * DIM..(i + 1) * DIM].copy_from_slice(&tail[..DIM]);
            self.by_person.insert(self.entries[i].person.clone(), i);
        }
        self.matrix.truncate(last * DIM);
        self.negatives.retain(|(p, _), _| p != person);
        true
    }

    /// Remembers a face a dispatcher rejected as `person` on `camera`.
    pub fn add_negative(&mut self, person: &str, camera: &str, embedding: Embedding) {
        self.negatives.entry((person.to_owned(), camera.to_owned())).or_default().push(embedding);
    }

    pub fn negatives(&self) -> usize {
        self.negatives.values().map(Vec::len).sum()
    }

    /// The best unexpired match of `probe` seen by `camera`, whatever its score.
    pub fn search(&self, probe: &Embedding, camera: &str, now_unix: i64) -> Option<Hit> {
        let mut best: Option<(usize, f32)> = None;
        for (i, row) in self.matrix.chunks_exact(DIM).enumerate() {
            let s = dot(row, probe);
            if best.is_none_or(|(_, b)| s > b) && self.entries[i].expires_unix > now_unix {
                best = Some((i, s));
            }
        }
        let (i, score) = best?;
        let person = self.entries[i].person.clone();
        let negative = self
            .negatives
            .get(&(person.clone(), camera.to_owned()))
            .and_then(|n| n.iter().map(|e| cosine(e, probe)).max_by(f32::total_cmp));
        Some(Hit { person, score, negative })
    }
}

/// Eight independent sums so the compiler can keep them in vector lanes.
#[inline]
fn dot(a: &[f32], b: &[f32; DIM]) -> f32 {
    let mut acc = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::normalize;

    fn emb(seed: u32) -> Embedding {
        let mut e = [0f32; DIM];
        let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
        for v in e.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *v = (x % 1000) as f32 / 500.0 - 1.0;
        }
        normalize(&mut e);
        e
    }

    #[test]
    fn finds_the_enrolled_person_and_skips_expired_entries() {
        let mut g = Gallery::new();
        for i in 0..100 {
            g.upsert(&format!("p{i}"), &emb(i), 2_000);
        }
        let hit = g.search(&emb(42), "c1", 1_000).unwrap();
        assert_eq!(hit.person, "p42");
        assert!((hit.score - 1.0).abs() < 1e-5);
        assert_eq!(hit.negative, None);
        // Expired: the best match is someone else, far below.
        g.upsert("p42", &emb(42), 500);
        let hit = g.search(&emb(42), "c1", 1_000).unwrap();
        assert_ne!(hit.person, "p42");
        assert!(hit.score < 0.5);
    }

    #[test]
    fn remove_keeps_the_matrix_consistent() {
        let mut g = Gallery::new();
        for i in 0..5 {
            g.upsert(&format!("p{i}"), &emb(i), i64::MAX);
        }
        g.add_negative("p1", "c1", emb(99));
        assert!(g.remove("p1"));
        assert!(!g.remove("p1"));
        assert_eq!(g.len(), 4);
        assert_eq!(g.negatives(), 0);
        for i in [0, 2, 3, 4] {
            assert_eq!(g.search(&emb(i), "c1", 0).unwrap().person, format!("p{i}"));
        }
    }

    #[test]
    fn negatives_are_per_person_and_camera() {
        let mut g = Gallery::new();
        g.upsert("p1", &emb(1), i64::MAX);
        g.add_negative("p1", "c1", emb(7));
        let on_c1 = g.search(&emb(7), "c1", 0).unwrap();
        assert!((on_c1.negative.unwrap() - 1.0).abs() < 1e-5);
        assert_eq!(g.search(&emb(7), "c2", 0).unwrap().negative, None);
    }
}
