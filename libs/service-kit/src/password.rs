//! Password hashing and verification: Argon2id with OWASP's minimum
//! parameters (19 MiB, two passes, one lane), shared by the user service
//! (which hashes at registration, so that only the hash leaves it) and the
//! auth service (which verifies logins and hashes changed passwords).
//!
//! Why one module: the two services had the same hashing code twice, and
//! the parameters one writes must be the ones the other accepts. The
//! values ([`Password`], [`PasswordAttempt`], [`PasswordHash`]) live in
//! `stocklet-values`, so the domain crates name them without depending on
//! Argon2. Only a [`Password`], which meets the password policy, is ever
//! hashed; a [`PasswordAttempt`] (a login) is only verified.
//!
//! Hashing and verifying are deliberately slow and memory-hungry, so they
//! run on the blocking pool and a semaphore bounds how many run at once: a
//! burst of registrations or logins queues instead of exhausting memory.
//! [`Passwords`] adds what logins need: an unknown user is still verified,
//! against a dummy hash, so the answer takes as long as for a known one and
//! does not reveal which accounts exist.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::OsRng;
use stocklet_values::{Password, PasswordAttempt, PasswordHash};
use tokio::sync::Semaphore;

/// Memory cost in KiB (OWASP: at least 19 MiB).
pub const MEMORY_KIB: u32 = 19_456;
/// Passes over memory (OWASP: at least 2).
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;

/// Why hashing failed: never the password's fault, always a bug or an
/// exhausted machine.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The hasher refused its parameters or input.
    #[error("argon2: {0}")]
    Argon2(String),
    /// The blocking task died or the hasher is shutting down.
    #[error("hashing task failed: {0}")]
    Task(String),
}

/// Hashes and verifies passwords, a bounded number at a time.
#[derive(Clone, Debug)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl Hasher {
    /// A hasher that runs at most `concurrency` hashes at once (at least
    /// one).
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Hashes `password` with a fresh random salt into a PHC string.
    pub async fn hash(&self, password: Password) -> Result<PasswordHash, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError::Task(e.to_string()))?;
        tokio::task::spawn_blocking(move || hash_now(&password))
            .await
            .map_err(|e| HashError::Task(e.to_string()))?
    }

    /// Whether `password` matches `hash`. A malformed hash matches nothing.
    pub async fn verify(
        &self,
        password: &PasswordAttempt,
        hash: &PasswordHash,
    ) -> Result<bool, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError::Task(e.to_string()))?;
        let (password, hash) = (password.clone(), hash.clone());
        tokio::task::spawn_blocking(move || verify_now(&password, &hash))
            .await
            .map_err(|e| HashError::Task(e.to_string()))
    }
}

/// A [`Hasher`] for logins: it also answers for users that do not exist,
/// in the time a real verification takes.
#[derive(Clone, Debug)]
pub struct Passwords {
    hasher: Hasher,
    dummy: PasswordHash,
}

impl Passwords {
    /// Runs at most `concurrency` hashes at once. Computes the dummy hash
    /// that unknown users are checked against (one hash's time).
    pub async fn new(concurrency: usize) -> Result<Self, HashError> {
        let hasher = Hasher::new(concurrency);
        let random = Password::parse(&uuid::Uuid::now_v7().to_string())
            .map_err(|e| HashError::Argon2(e.to_string()))?;
        let dummy = hasher.hash(random).await?;
        Ok(Self { hasher, dummy })
    }

    /// Hashes `password` with a fresh random salt into a PHC string.
    pub async fn hash(&self, password: Password) -> Result<PasswordHash, HashError> {
        self.hasher.hash(password).await
    }

    /// Whether `password` matches `hash`. A malformed hash matches nothing.
    pub async fn verify(
        &self,
        password: &PasswordAttempt,
        hash: &PasswordHash,
    ) -> Result<bool, HashError> {
        self.hasher.verify(password, hash).await
    }

    /// Spends the time of one verification and answers `false`: for logins
    /// of unknown users.
    pub async fn verify_nobody(&self, password: &PasswordAttempt) -> Result<bool, HashError> {
        self.hasher
            .verify(password, &self.dummy)
            .await
            .map(|_| false)
    }
}

fn argon2() -> Result<Argon2<'static>, HashError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .map_err(|e| HashError::Argon2(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes on the current thread.
fn hash_now(password: &Password) -> Result<PasswordHash, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    let phc = argon2()?
        .hash_password(password.expose().as_bytes(), &salt)
        .map_err(|e| HashError::Argon2(e.to_string()))?;
    Ok(PasswordHash::from_phc(phc.to_string()))
}

/// Verifies on the current thread.
fn verify_now(password: &PasswordAttempt, hash: &PasswordHash) -> bool {
    let Ok(parsed) = argon2::PasswordHash::new(hash.expose()) else {
        return false;
    };
    // The stored hash names its own parameters; Argon2id only.
    parsed.algorithm == argon2::ARGON2ID_IDENT
        && Argon2::default()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_salted_argon2id_and_wrong_passwords_do_not_verify() {
        let passwords = Passwords::new(2).await.unwrap();
        let password = Password::parse("correct horse").unwrap();
        let started = std::time::Instant::now();
        let one = passwords.hash(password.clone()).await.unwrap();
        eprintln!(
            "one argon2id hash (m=19456 KiB, t=2, p=1) took {:?}",
            started.elapsed()
        );
        let two = passwords.hash(password.clone()).await.unwrap();
        assert!(one.expose().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_ne!(one, two, "each hash has its own salt");
        let attempt = PasswordAttempt::from(&password);
        assert!(passwords.verify(&attempt, &one).await.unwrap());
        let wrong = PasswordAttempt::parse("wrong horse").unwrap();
        assert!(!passwords.verify(&wrong, &one).await.unwrap());
        assert!(
            !passwords
                .verify(&attempt, &PasswordHash::from_phc("junk"))
                .await
                .unwrap()
        );
        assert!(!passwords.verify_nobody(&attempt).await.unwrap());
    }
}
