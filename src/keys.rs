//! Approver keys (OpenSSH Ed25519, as `ssh-keygen -t ed25519` writes them) and node keys
//! (WireGuard X25519, base64 as `wg genkey` writes them).
//!
//! Secrets are their own types: no `Debug` or `Display` shows them, and they are zeroized on
//! drop. Public keys are the ledger's [`ApproverKey`] and [`TransportKey`].

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::public::{Ed25519PublicKey, KeyData};
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use crate::files::{self, FileError};
use crate::ledger::types::{ApproverKey, Sig, TransportKey};

/// Largest key file read.
const KEY_FILE_CAP: usize = 64 << 10;

/// A key could not be read, parsed or decrypted.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file itself.
    #[error(transparent)]
    File(#[from] FileError),
    /// Not a key of the expected format.
    #[error("{path}: {detail}")]
    Format {
        /// The path.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// Passphrase-protected and none given.
    #[error("{path} is passphrase-protected; pass --passphrase-file FILE")]
    NeedPassphrase {
        /// The path.
        path: String,
    },
    /// Decryption failed.
    #[error("{path}: wrong passphrase")]
    WrongPassphrase {
        /// The path.
        path: String,
    },
    /// The OS random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Rng(String),
}

fn random_32() -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| KeyError::Rng(e.to_string()))?;
    Ok(seed)
}

/// An approver's Ed25519 signing key.
pub struct ApproverSecret {
    key: SigningKey,
}

impl fmt::Debug for ApproverSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApproverSecret(public {})", self.public())
    }
}

impl ApproverSecret {
    /// A new key from the OS RNG.
    pub fn generate() -> Result<Self, KeyError> {
        Ok(Self::from_seed(&*random_32()?))
    }

    /// The key for a fixed 32-byte seed (test vectors only use this).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        ApproverSecret {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// Reads an OpenSSH Ed25519 private key, checking the file is private (`0600`, owned by
    /// the effective uid, no symlink) and decrypting it with `passphrase` when protected.
    pub fn load(path: &Path, passphrase: Option<&[u8]>) -> Result<Self, KeyError> {
        files::check_private(path, false)?;
        let pem = Zeroizing::new(files::read_capped(path, KEY_FILE_CAP)?);
        let shown = path.display().to_string();
        let format = |detail: String| KeyError::Format {
            path: shown.clone(),
            detail,
        };
        let mut key = PrivateKey::from_openssh(&*pem)
            .map_err(|e| format(format!("not an OpenSSH private key ({e})")))?;
        if key.is_encrypted() {
            let pass = passphrase.ok_or_else(|| KeyError::NeedPassphrase {
                path: shown.clone(),
            })?;
            key = key.decrypt(pass).map_err(|_| KeyError::WrongPassphrase {
                path: shown.clone(),
            })?;
        }
        let pair = key
            .key_data()
            .ed25519()
            .ok_or_else(|| format(format!("a {} key, not Ed25519", key.algorithm())))?;
        let secret = Self::from_seed(&pair.private.to_bytes());
        if secret.public().as_bytes() != &pair.public.0 {
            return Err(format("public half does not match the private key".into()));
        }
        Ok(secret)
    }

    /// The OpenSSH private-key text (encrypted with aes256-ctr/bcrypt when `passphrase` is
    /// given, like `ssh-keygen -N`).
    pub fn to_openssh(
        &self,
        comment: &str,
        passphrase: Option<&[u8]>,
    ) -> Result<Zeroizing<String>, KeyError> {
        let seed = Zeroizing::new(self.key.to_bytes());
        let pair = Ed25519Keypair::from_seed(&seed);
        let mut key =
            PrivateKey::new(KeypairData::Ed25519(pair), comment).map_err(|e| KeyError::Format {
                path: String::new(),
                detail: e.to_string(),
            })?;
        if let Some(pass) = passphrase {
            key = key
                .encrypt(&mut getrandom::SysRng, pass)
                .map_err(|e| KeyError::Rng(e.to_string()))?;
        }
        key.to_openssh(LineEnding::LF)
            .map_err(|e| KeyError::Format {
                path: String::new(),
                detail: e.to_string(),
            })
    }

    /// The public key.
    pub fn public(&self) -> ApproverKey {
        ApproverKey::from_bytes(self.key.verifying_key().to_bytes())
            .expect("a key derived from a secret is a valid, non-weak point")
    }

    /// Ed25519 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Sig {
        Sig::from_bytes(self.key.sign(message).to_bytes())
    }
}

/// The OpenSSH public-key line (`ssh-ed25519 AAAA… comment`).
pub fn openssh_public(key: &ApproverKey, comment: &str) -> String {
    let public = PublicKey::new(KeyData::Ed25519(Ed25519PublicKey(*key.as_bytes())), comment);
    public
        .to_openssh()
        .expect("an Ed25519 public key always encodes")
}

/// The fingerprint `ssh-keygen -lf` prints for this key (`SHA256:…`).
pub fn fingerprint(key: &ApproverKey) -> String {
    PublicKey::from(Ed25519PublicKey(*key.as_bytes()))
        .fingerprint(HashAlg::Sha256)
        .to_string()
}

/// Reads an approver public key from an OpenSSH `.pub` line or a private key file.
pub fn read_approver_public(
    path: &Path,
    passphrase: Option<&[u8]>,
) -> Result<ApproverKey, KeyError> {
    let text = files::read_capped(path, KEY_FILE_CAP)?;
    let shown = path.display().to_string();
    let trimmed = String::from_utf8_lossy(&text);
    if trimmed.trim_start().starts_with("ssh-") {
        let public = PublicKey::from_openssh(trimmed.trim()).map_err(|e| KeyError::Format {
            path: shown.clone(),
            detail: format!("not an OpenSSH public key ({e})"),
        })?;
        let ed = public
            .key_data()
            .ed25519()
            .ok_or_else(|| KeyError::Format {
                path: shown.clone(),
                detail: format!("a {} key, not Ed25519", public.algorithm()),
            })?;
        return ApproverKey::from_bytes(ed.0).map_err(|e| KeyError::Format {
            path: shown,
            detail: e.to_string(),
        });
    }
    // A private key: the public half is readable without the passphrase, but loading through
    // the one checked path keeps the permission rule in one place.
    Ok(ApproverSecret::load(path, passphrase)?.public())
}

/// A node's WireGuard (X25519) private key.
pub struct NodeSecret {
    key: x25519_dalek::StaticSecret,
}

impl fmt::Debug for NodeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeSecret(public {})", self.public())
    }
}

impl NodeSecret {
    /// A new key from the OS RNG (clamped as X25519 requires).
    pub fn generate() -> Result<Self, KeyError> {
        Ok(NodeSecret {
            key: x25519_dalek::StaticSecret::from(*random_32()?),
        })
    }

    /// Reads a base64 private key file as `wg genkey` writes it, checking it is private.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        files::check_private(path, false)?;
        let text = Zeroizing::new(files::read_capped(path, 1024)?);
        let format = || KeyError::Format {
            path: path.display().to_string(),
            detail: "not a base64 WireGuard private key (44 characters)".into(),
        };
        let s = std::str::from_utf8(&text).map_err(|_| format())?.trim();
        let raw = Zeroizing::new(B64.decode(s).map_err(|_| format())?);
        let bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| format())?;
        Ok(NodeSecret {
            key: x25519_dalek::StaticSecret::from(bytes),
        })
    }

    /// A key from its 32 bytes (as a tunnel backend reads it back).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let bytes = Zeroizing::new(bytes);
        NodeSecret {
            key: x25519_dalek::StaticSecret::from(*bytes),
        }
    }

    /// The clamped private key bytes (for the tunnel backends only).
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut bytes = Zeroizing::new(self.key.to_bytes());
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        bytes
    }

    /// The base64 text of the private key plus a newline, as `wg genkey` prints it.
    pub fn to_base64(&self) -> Zeroizing<String> {
        // Clamped like `wg genkey`, so the file is what WireGuard tools expect.
        let bytes = self.secret_bytes();
        Zeroizing::new(format!("{}\n", B64.encode(*bytes)))
    }

    /// The transport public key.
    pub fn public(&self) -> TransportKey {
        TransportKey::from_bytes(x25519_dalek::PublicKey::from(&self.key).to_bytes())
            .expect("X25519 of a clamped scalar is never the all-zero point")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssh_round_trip_with_and_without_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let k = ApproverSecret::from_seed(&[7; 32]);
        for pass in [None, Some(&b"correct horse"[..])] {
            let p = dir.path().join(format!("k{}", pass.is_some()));
            let text = k.to_openssh("test", pass).unwrap();
            files::write_atomic(&p, text.as_bytes(), 0o600, false).unwrap();
            let back = ApproverSecret::load(&p, pass).unwrap();
            assert_eq!(back.public(), k.public());
            if pass.is_some() {
                assert!(matches!(
                    ApproverSecret::load(&p, None),
                    Err(KeyError::NeedPassphrase { .. })
                ));
                assert!(matches!(
                    ApproverSecret::load(&p, Some(b"wrong")),
                    Err(KeyError::WrongPassphrase { .. })
                ));
            }
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let k = ApproverSecret::from_seed(&[9; 32]);
        let shown = format!("{k:?}");
        assert!(!shown.contains(&B64.encode([9u8; 32])));
        let n = NodeSecret::generate().unwrap();
        assert!(!format!("{n:?}").contains(n.to_base64().trim()));
    }

    #[test]
    fn node_key_matches_its_public_half_after_reload() {
        let dir = tempfile::tempdir().unwrap();
        let n = NodeSecret::generate().unwrap();
        let p = dir.path().join("wg.key");
        files::write_atomic(&p, n.to_base64().as_bytes(), 0o600, false).unwrap();
        assert_eq!(NodeSecret::load(&p).unwrap().public(), n.public());
    }
}
