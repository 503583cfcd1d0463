//! Hash timings, for reference beside the API figures: the SHA-256 digest
//! every token verification computes, against the slow password hashes a
//! token store might wrongly use (argon2id with OWASP's parameters, as
//! Tollgate's passwords use; PBKDF2-SHA256 with 10,000 rounds, as Gitea
//! hashes its tokens). Run by
//! `scripts/bench` (`cargo bench --bench hashes`), measured by divan.

use argon2::{Algorithm, Argon2, Params, Version};
use tollgate::domain::PlainToken;

fn main() {
    divan::main();
}

#[divan::bench]
fn sha256_token_digest(bencher: divan::Bencher) {
    let token = PlainToken::generate();
    bencher.bench(|| divan::black_box(&token).digest());
}

/// What a slow-hash token store would run per request.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn argon2id_owasp(bencher: divan::Bencher) {
    let params = Params::new(19_456, 2, 1, Some(32)).unwrap();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let secret = PlainToken::generate();
    bencher.bench(|| {
        let mut out = [0u8; 32];
        argon
            .hash_password_into(secret.expose().as_bytes(), b"tollgate-bench-s", &mut out)
            .unwrap();
        out
    });
}

/// Gitea's token hash.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn pbkdf2_sha256_10k(bencher: divan::Bencher) {
    let secret = PlainToken::generate();
    bencher.bench(|| {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
            secret.expose().as_bytes(),
            b"tollgate-bench-s",
            10_000,
            &mut out,
        );
        out
    });
}
