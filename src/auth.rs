//! Who may use the HTTP API: users with one role each, argon2id password hashes in PostGIS,
//! sessions as random tokens (an httpOnly cookie for browsers, a bearer token for
//! integrations), and sign-in failures limited and audited, without letting anyone's guesses
//! lock a user out or fill the audit log.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgPool;
use tokio::sync::{watch, Semaphore};

/// The cookie a browser session travels in.
pub const COOKIE: &str = "kuzet_session";
/// How long a session lasts without signing in again (one shift and some).
pub const SESSION_TTL: chrono::Duration = chrono::Duration::hours(14);
/// Failed sign-ins allowed within `FAILURE_WINDOW`: per user name from one address; per
/// address (higher: a proxy or a station's network puts many people behind one); per user name
/// from addresses the user has not signed in from (spread guessing).
const MAX_FAILURES_USER_ADDR: usize = 5;
const MAX_FAILURES_ADDR: usize = 20;
const MAX_FAILURES_USER_ELSEWHERE: usize = 50;
const FAILURE_WINDOW: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the console: incidents, assignments, face-match reviews.
    Dispatcher,
    /// A dispatcher who also keeps the watchlist.
    Supervisor,
    /// Prosecutors, internal affairs: custodial cameras' alerts and the audit log, read-only.
    Oversight,
    /// A patrol officer on a tablet, signed in as one unit.
    Officer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Dispatcher, Role::Supervisor, Role::Oversight, Role::Officer];

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Dispatcher => "dispatcher",
            Role::Supervisor => "supervisor",
            Role::Oversight => "oversight",
            Role::Officer => "officer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A signed-in user.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    pub username: String,
    pub role: Role,
    /// The unit an officer signs in as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_id: Option<String>,
}

/// A user name: what the audit log and the contract's ids allow.
pub fn check_username(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && s.as_bytes()[0].is_ascii_alphanumeric();
    ok.then_some(())
        .ok_or_else(|| "user names are 1-64 of a-z 0-9 . _ -, starting with a letter or digit".into())
}

/// An argon2id PHC string for `password`.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string())
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Adds a user (or sets a new password and role for one), audited.
pub async fn add_user(
    pool: &PgPool,
    username: &str,
    role: Role,
    unit_id: Option<&str>,
    password: &str,
    actor: &str,
) -> anyhow::Result<bool> {
    check_username(username).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(password.chars().count() >= 12, "passwords are 12 characters or more");
    anyhow::ensure!(
        (role == Role::Officer) == unit_id.is_some(),
        "an officer signs in as a unit (--unit); other roles have none"
    );
    let hash = hash_password(password)?;
    let mut tx = pool.begin().await?;
    let created: bool = sqlx::query_scalar(
        "INSERT INTO users AS u (username, role, unit_id, password_hash, created_by) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (username) DO UPDATE SET role = EXCLUDED.role, unit_id = EXCLUDED.unit_id,
             password_hash = EXCLUDED.password_hash, disabled = false
         RETURNING (u.xmax = 0)",
    )
    .bind(username)
    .bind(role.as_str())
    .bind(unit_id)
    .bind(&hash)
    .bind(actor)
    .fetch_one(&mut *tx)
    .await
    .context("cannot write the user")?;
    // A new password ends the user's sessions.
    sqlx::query("DELETE FROM sessions WHERE username = $1").bind(username).execute(&mut *tx).await?;
    sqlx::query("SELECT audit_append($1, 'user.add', $2, $3)")
        .bind(actor)
        .bind(username)
        .bind(json!({"created": created, "role": role.as_str(), "unit_id": unit_id}))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(created)
}

/// Takes a user's sessions away and keeps them from signing in (audited). False when there is
/// no such user. A running kuzet closes their live feed within `SESSION_RECHECK`.
pub async fn disable_user(pool: &PgPool, username: &str, actor: &str) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    let found = sqlx::query("UPDATE users SET disabled = true WHERE username = $1")
        .bind(username)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if found {
        sqlx::query("DELETE FROM sessions WHERE username = $1").bind(username).execute(&mut *tx).await?;
        sqlx::query("SELECT audit_append($1, 'user.disable', $2, '{}'::jsonb)")
            .bind(actor)
            .bind(username)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(found)
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("wrong user name or password")]
    Wrong,
    #[error("too many failed sign-ins from here; try again in a few minutes")]
    TooMany,
    /// More sign-ins at once than the password checks can take: try again in a moment.
    #[error("too many sign-ins at once; try again in a moment")]
    Busy,
    #[error("database unavailable: {0}")]
    Database(#[from] sqlx::Error),
}

/// How often a live feed checks that its session still stands (a user disabled or given a new
/// password from the command line, in another process). Sign-outs here end it at once.
pub const SESSION_RECHECK: Duration = Duration::from_secs(5);
/// Password checks at once (argon2id takes ~19 MiB and tens of ms each), and how many more may
/// wait for one before a sign-in is turned away as busy.
const HASHERS: usize = 2;
const HASH_QUEUE: usize = 32;

/// Failed and refused sign-ins since start (refusals are audited once per key and window,
/// failures once per user and window; these count every one).
#[derive(Debug, Default)]
pub struct SignInCounts {
    pub failed: AtomicU64,
    pub refused: AtomicU64,
    pub busy: AtomicU64,
}

/// A limited key: what it limits, and the failures it allows in `FAILURE_WINDOW`.
struct Key {
    name: String,
    max: usize,
}

/// Sessions and the sign-in limiter. Sessions are looked up in the database on every
/// request (one indexed read), so signing out, a new password or a disabled user takes
/// effect at once, in every kuzet process.
///
/// The limiter counts failures per user name and address together, per address, and per
/// user name from addresses the user has not signed in from: guesses from one place cannot
/// lock a user out of the places they work from, and guesses spread over many addresses
/// still meet a limit.
pub struct Auth {
    pool: PgPool,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// When each limited key was last audited as refused.
    refused: Mutex<HashMap<String, Instant>>,
    /// When each user's failures were last audited.
    audited_failure: Mutex<HashMap<String, Instant>>,
    /// Addresses each user has signed in from since start.
    known: Mutex<HashMap<String, HashSet<String>>>,
    hashers: Arc<Semaphore>,
    waiting: AtomicUsize,
    pub counts: SignInCounts,
    /// Bumped at every sign-out here: live feeds check their session again.
    ended: watch::Sender<u64>,
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Known addresses kept per user (a console, a spare, a phone's network or two).
const KNOWN_PER_USER: usize = 16;

impl Auth {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            failures: Mutex::default(),
            refused: Mutex::default(),
            audited_failure: Mutex::default(),
            known: Mutex::default(),
            hashers: Arc::new(Semaphore::new(HASHERS)),
            waiting: AtomicUsize::new(0),
            counts: SignInCounts::default(),
            ended: watch::channel(0).0,
        }
    }

    /// The keys a sign-in attempt is limited by.
    fn keys(&self, named: &str, from: &str) -> Vec<Key> {
        let mut keys = vec![
            Key { name: format!("user-addr:{named}|{from}"), max: MAX_FAILURES_USER_ADDR },
            Key { name: format!("addr:{from}"), max: MAX_FAILURES_ADDR },
        ];
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if !known.get(named).is_some_and(|a| a.contains(from)) {
            keys.push(Key { name: format!("user:{named}"), max: MAX_FAILURES_USER_ELSEWHERE });
        }
        keys
    }

    /// The first key with too many failures lately.
    fn limited<'k>(&self, keys: &'k [Key]) -> Option<&'k Key> {
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter().find(|k| {
            let q = f.entry(k.name.clone()).or_default();
            while q.front().is_some_and(|t| now.duration_since(*t) > FAILURE_WINDOW) {
                q.pop_front();
            }
            q.len() >= k.max
        })
    }

    fn failed(&self, keys: &[Key]) {
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Names tried once and never again would pile up: drop the stale ones now and then.
        if f.len() > 10_000 {
            f.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) <= FAILURE_WINDOW));
        }
        for k in keys {
            f.entry(k.name.clone()).or_default().push_back(now);
        }
    }

    /// True the first time `key` comes up in a window (`seen` remembers when it last did).
    fn first_in_window(seen: &Mutex<HashMap<String, Instant>>, key: &str) -> bool {
        let now = Instant::now();
        let mut r = seen.lock().unwrap_or_else(|p| p.into_inner());
        if r.len() > 10_000 {
            r.retain(|_, t| now.duration_since(*t) <= FAILURE_WINDOW);
        }
        match r.get(key) {
            Some(t) if now.duration_since(*t) <= FAILURE_WINDOW => false,
            _ => {
                r.insert(key.to_owned(), now);
                true
            }
        }
    }

    async fn audit(&self, actor: &str, action: &str, subject: &str, details: serde_json::Value) {
        let r = sqlx::query("SELECT audit_append($1, $2, $3, $4)")
            .bind(actor)
            .bind(action)
            .bind(subject)
            .bind(details)
            .execute(&self.pool)
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, action, "cannot audit a sign-in");
        }
    }

    /// Verifies a password against a PHC string on a blocking thread, never on the caller's
    /// (an HTTP worker serves every request): at most `HASHERS` at once, `HASH_QUEUE` waiting.
    async fn verify(&self, password: &str, phc: String) -> Result<bool, SignInError> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= HASHERS + HASH_QUEUE {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            self.counts.busy.fetch_add(1, Ordering::Relaxed);
            return Err(SignInError::Busy);
        }
        let permit = self.hashers.clone().acquire_owned().await;
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            verify_password(&password, &phc)
        })
        .await
        .unwrap_or(false);
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        Ok(ok)
    }

    /// Checks the password; on success a new session: (token, user).
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        from: &str,
    ) -> Result<(String, User), SignInError> {
        // What the audit log names: a well-formed user name, never whatever was typed (a
        // password typed into the wrong field does not land on the chain).
        let named = if check_username(username).is_ok() { username } else { "(not a user name)" };
        let keys = self.keys(named, from);
        if let Some(k) = self.limited(&keys) {
            self.counts.refused.fetch_add(1, Ordering::Relaxed);
            // Once per key and window: a script hammering the door does not flood the chain.
            if Self::first_in_window(&self.refused, &k.name) {
                tracing::warn!(user = named, from, limit = %k.name, "sign-ins refused: too many failures");
                self.audit(
                    &format!("addr:{from}"),
                    "auth.sign_in_refused",
                    named,
                    json!({"reason": "too many failures", "limit": k.name.split(':').next()}),
                )
                .await;
            }
            return Err(SignInError::TooMany);
        }
        let row: Option<(String, Option<String>, String, bool)> =
            sqlx::query_as("SELECT role, unit_id, password_hash, disabled FROM users WHERE username = $1")
                .bind(username)
                .fetch_optional(&self.pool)
                .await?;
        // A missing user costs a hash too, so timing does not tell which names exist.
        let (ok, user) = match row {
            Some((role, unit_id, hash, disabled)) => {
                let ok = self.verify(password, hash).await? && !disabled;
                (ok, Role::parse(&role).map(|role| User { username: username.to_owned(), role, unit_id }))
            }
            None => {
                let _ = self.verify(password, DUMMY_HASH.to_owned()).await?;
                (false, None)
            }
        };
        let Some(user) = user.filter(|_| ok) else {
            self.failed(&keys);
            self.counts.failed.fetch_add(1, Ordering::Relaxed);
            // A user's failures are on the chain once per window (the next sign-in says how many
            // there were); names of nobody are counted only, so made-up names cannot fill it.
            let exists = named != "(not a user name)" && self.user_exists(named).await;
            if exists && Self::first_in_window(&self.audited_failure, named) {
                self.audit(&format!("addr:{from}"), "auth.sign_in_failed", named, json!({})).await;
            }
            return Err(SignInError::Wrong);
        };
        let failures_before = self.failures_of(&format!("user:{username}"));
        {
            let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            let k = known.entry(username.to_owned()).or_default();
            if k.len() >= KNOWN_PER_USER {
                k.clear();
            }
            k.insert(from.to_owned());
        }
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let expires = Utc::now() + SESSION_TTL;
        sqlx::query("INSERT INTO sessions (token_sha256, username, expires_at) VALUES ($1, $2, $3)")
            .bind(&token_hash(&token)[..])
            .bind(username)
            .bind(expires)
            .execute(&self.pool)
            .await?;
        self.audit(
            &format!("user:{username}"),
            "auth.sign_in",
            username,
            json!({"from": from, "role": user.role, "failures_before": failures_before}),
        )
        .await;
        Ok((token, user))
    }

    async fn user_exists(&self, username: &str) -> bool {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE username = $1)")
            .bind(username)
            .fetch_one(&self.pool)
            .await
            .unwrap_or(false)
    }

    /// Failures against a user in the window, from anywhere.
    fn failures_of(&self, key: &str) -> usize {
        let now = Instant::now();
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.get(key).map_or(0, |q| q.iter().filter(|t| now.duration_since(**t) <= FAILURE_WINDOW).count())
    }

    /// The user a token belongs to, if the session stands.
    pub async fn user(&self, token: &str) -> Result<Option<User>, sqlx::Error> {
        Ok(self.session(token).await?.map(|(u, _)| u))
    }

    /// The user a token belongs to and when the session expires, if it stands.
    pub async fn session(&self, token: &str) -> Result<Option<(User, DateTime<Utc>)>, sqlx::Error> {
        let row: Option<(String, String, Option<String>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT u.username, u.role, u.unit_id, s.expires_at FROM sessions s JOIN users u USING (username)
             WHERE s.token_sha256 = $1 AND s.expires_at > now() AND NOT u.disabled",
        )
        .bind(&token_hash(token)[..])
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(username, role, unit_id, expires)| {
            Some((User { username, role: Role::parse(&role)?, unit_id }, expires))
        }))
    }

    /// Ends a session; live feeds opened with it close.
    pub async fn sign_out(&self, token: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM sessions WHERE token_sha256 = $1")
            .bind(&token_hash(token)[..])
            .execute(&self.pool)
            .await?;
        self.ended.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Changes when a session may have ended here (a sign-out).
    pub fn ended(&self) -> watch::Receiver<u64> {
        self.ended.subscribe()
    }
}

/// A valid argon2id hash of a random password, verified against when the user does not exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$W0x8J8l0tq9Sm3l2xqVv3mE2X0d3jwTz1yq8m8J3XvA";

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").expect("a lazy pool"))
    }

    /// Password checks never run on the caller's thread, and past the queue a sign-in is turned
    /// away at once instead of waiting behind hundreds of others.
    #[tokio::test]
    async fn password_checks_beyond_the_queue_are_turned_away_as_busy() {
        let a = Arc::new(auth());
        let held: Vec<_> = (0..HASHERS).map(|_| a.hashers.clone().try_acquire_owned().unwrap()).collect();
        let mut waiting = Vec::new();
        for _ in 0..HASHERS + HASH_QUEUE {
            let a = a.clone();
            // Not a PHC string: checked at once once a hasher is free (argon2 is slow unoptimised).
            waiting.push(tokio::spawn(async move { a.verify("pw", "not a hash".to_owned()).await }));
        }
        // Every spawned check has reached the semaphore before the next one asks.
        while a.waiting.load(Ordering::Acquire) < HASHERS + HASH_QUEUE {
            tokio::task::yield_now().await;
        }
        assert!(matches!(a.verify("pw", "not a hash".to_owned()).await, Err(SignInError::Busy)));
        assert_eq!(a.counts.busy.load(Ordering::Relaxed), 1);
        drop(held);
        for w in waiting {
            assert!(!w.await.unwrap().unwrap(), "a wrong password is wrong");
        }
        assert_eq!(a.waiting.load(Ordering::Acquire), 0);
    }

    /// Guesses from one address lock that address out for the user, not the user's own
    /// address; spread guesses meet the user-wide limit, which does not apply where the user
    /// has signed in before.
    #[tokio::test]
    async fn guesses_from_elsewhere_cannot_lock_a_user_out_where_they_work() {
        let a = auth();
        a.known.lock().unwrap().entry("disp-1".into()).or_default().insert("10.0.0.1".into());
        let from_attacker = a.keys("disp-1", "198.51.100.7");
        for _ in 0..MAX_FAILURES_USER_ADDR {
            assert!(a.limited(&from_attacker).is_none());
            a.failed(&from_attacker);
        }
        assert!(a.limited(&from_attacker).is_some_and(|k| k.name.starts_with("user-addr:")));
        assert!(a.limited(&a.keys("disp-1", "10.0.0.1")).is_none(), "the user's own console");
        // Many addresses, a few guesses each: the user-wide limit, elsewhere only.
        for i in 0..(MAX_FAILURES_USER_ELSEWHERE / 2) {
            let keys = a.keys("disp-1", &format!("203.0.113.{i}"));
            a.failed(&keys);
            a.failed(&keys);
        }
        let fresh = a.keys("disp-1", "192.0.2.1");
        assert!(a.limited(&fresh).is_some_and(|k| k.name == "user:disp-1"));
        assert!(a.limited(&a.keys("disp-1", "10.0.0.1")).is_none(), "still the user's own console");
        assert!(a.limited(&a.keys("disp-2", "192.0.2.1")).is_none(), "another user");
    }
}
