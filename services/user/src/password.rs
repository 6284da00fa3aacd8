//! Password hashing: Argon2id with OWASP's minimum parameters.
//!
//! The user service hashes the password at registration, so that only the
//! hash leaves it (in `UserRegistered`, for the auth service). Hashing is
//! deliberately slow and memory-hungry (19 MiB, two passes), so it runs on
//! the blocking pool, and a semaphore bounds how many run at once: a burst
//! of registrations queues instead of exhausting memory.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::OsRng;
use tokio::sync::Semaphore;

use crate::domain::{Password, PasswordHash};

/// Memory cost in KiB (OWASP: at least 19 MiB).
pub const MEMORY_KIB: u32 = 19_456;
/// Passes over memory (OWASP: at least 2).
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;

/// Why a password could not be hashed: never the password's fault, always
/// a bug or an exhausted machine.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The hasher refused its parameters or input.
    #[error("argon2: {0}")]
    Argon2(String),
    /// The blocking task died or the hasher is shutting down.
    #[error("hashing task failed: {0}")]
    Task(String),
}

/// Hashes passwords, a bounded number at a time.
#[derive(Clone, Debug)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl Hasher {
    /// A hasher that runs at most `concurrency` hashes at once.
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

#[cfg(test)]
mod tests {
    use argon2::PasswordVerifier;

    use super::*;

    #[tokio::test]
    async fn hashes_are_salted_argon2id_phc_strings_that_verify() {
        let hasher = Hasher::new(2);
        let password = Password::parse("correct horse").unwrap();
        let started = std::time::Instant::now();
        let one = hasher.hash(password.clone()).await.unwrap();
        eprintln!(
            "one argon2id hash (m=19456 KiB, t=2, p=1) took {:?}",
            started.elapsed()
        );
        let two = hasher.hash(password).await.unwrap();
        assert!(one.expose().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_ne!(one, two, "each hash has its own salt");
        let parsed = argon2::PasswordHash::new(one.expose()).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
    }
}
