//! Who may use the HTTP API: users with one role each, argon2id password hashes in PostGIS,
//! sessions as random tokens (an httpOnly cookie for browsers, a bearer token for
//! integrations), and sign-in failures limited and audited.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::Utc;
use rand::RngCore;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgPool;

/// The cookie a browser session travels in.
pub const COOKIE: &str = "kuzet_session";
/// How long a session lasts without signing in again (one shift and some).
pub const SESSION_TTL: chrono::Duration = chrono::Duration::hours(14);
/// Failed sign-ins allowed within `FAILURE_WINDOW` per user name, and per address (higher:
/// a proxy or a station's network puts many people behind one).
const MAX_FAILURES_USER: usize = 5;
const MAX_FAILURES_ADDR: usize = 20;
const FAILURE_WINDOW: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("wrong user name or password")]
    Wrong,
    #[error("too many failed sign-ins; try again in a few minutes")]
    TooMany,
    #[error("database unavailable: {0}")]
    Database(#[from] sqlx::Error),
}

/// Sessions and the sign-in limiter. Sessions are looked up in the database on every
/// request (one indexed read), so signing out, a new password or a disabled user takes
/// effect at once, in every kuzet process.
pub struct Auth {
    pool: PgPool,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// When each limited key was last audited as refused.
    refused: Mutex<HashMap<String, Instant>>,
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    pub fn new(pool: PgPool) -> Self {
        Self { pool, failures: Mutex::new(HashMap::new()), refused: Mutex::new(HashMap::new()) }
    }

    /// Too many failures lately for any of these keys (a user name, an address)?
    fn limited(&self, keys: &[(String, usize)]) -> bool {
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter().any(|(k, max)| {
            let q = f.entry(k.clone()).or_default();
            while q.front().is_some_and(|t| now.duration_since(*t) > FAILURE_WINDOW) {
                q.pop_front();
            }
            q.len() >= *max
        })
    }

    fn failed(&self, keys: &[(String, usize)]) {
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Names tried once and never again would pile up: drop the stale ones now and then.
        if f.len() > 10_000 {
            f.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) <= FAILURE_WINDOW));
        }
        for (k, _) in keys {
            f.entry(k.clone()).or_default().push_back(now);
        }
    }

    /// True for the first refusal of these keys in a window (then audited).
    fn first_refusal(&self, keys: &[(String, usize)]) -> bool {
        let now = Instant::now();
        let mut r = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        r.retain(|_, t| now.duration_since(*t) <= FAILURE_WINDOW);
        let mut first = false;
        for (k, _) in keys {
            if !r.contains_key(k) {
                r.insert(k.clone(), now);
                first = true;
            }
        }
        first
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
        let keys =
            [(format!("user:{named}"), MAX_FAILURES_USER), (format!("addr:{from}"), MAX_FAILURES_ADDR)];
        if self.limited(&keys) {
            // Once per key and window: a script hammering the door does not flood the chain.
            if self.first_refusal(&keys) {
                self.audit(
                    &format!("addr:{from}"),
                    "auth.sign_in_refused",
                    named,
                    json!({"reason": "too many failures"}),
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
                let ok = verify_password(password, &hash) && !disabled;
                (ok, Role::parse(&role).map(|role| User { username: username.to_owned(), role, unit_id }))
            }
            None => {
                let _ = verify_password(password, DUMMY_HASH);
                (false, None)
            }
        };
        let Some(user) = user.filter(|_| ok) else {
            self.failed(&keys);
            self.audit(&format!("addr:{from}"), "auth.sign_in_failed", named, json!({})).await;
            return Err(SignInError::Wrong);
        };
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
            json!({"from": from, "role": user.role}),
        )
        .await;
        Ok((token, user))
    }

    /// The user a token belongs to, if the session stands.
    pub async fn user(&self, token: &str) -> Result<Option<User>, sqlx::Error> {
        let row: Option<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT u.username, u.role, u.unit_id FROM sessions s JOIN users u USING (username)
             WHERE s.token_sha256 = $1 AND s.expires_at > now() AND NOT u.disabled",
        )
        .bind(&token_hash(token)[..])
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(username, role, unit_id)| {
            Some(User { username, role: Role::parse(&role)?, unit_id })
        }))
    }

    /// Ends a session.
    pub async fn sign_out(&self, token: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM sessions WHERE token_sha256 = $1")
            .bind(&token_hash(token)[..])
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// A valid argon2id hash of a random password, verified against when the user does not exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$W0x8J8l0tq9Sm3l2xqVv3mE2X0d3jwTz1yq8m8J3XvA";
