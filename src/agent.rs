//! An ssh-agent client for approver keys held outside the signing machine's disk: OpenSSH's
//! `ssh-agent`, gpg-agent with an OpenPGP card, 1Password, KeePassXC — anything that speaks the
//! agent protocol on `$SSH_AUTH_SOCK`.
//!
//! Two requests are used (draft-miller-ssh-agent §3.5, §3.6): list the identities, and sign a
//! message with one of them. Only Ed25519 identities count; an Ed25519 agent signature is the
//! plain Ed25519 signature of the message, which the gate verifies (`verify_strict`) like any
//! other before a document carrying it is written. The wire encoding (RFC 4251 strings and integers) and the key and
//! signature blobs are read and written by `ssh-encoding` and `ssh-key`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use ssh_key::encoding::{Decode, Encode, Reader};
use ssh_key::public::{Ed25519PublicKey, KeyData};
use ssh_key::{Algorithm, Signature};

use crate::ledger::types::{ApproverKey, Sig};

const SSH_AGENT_FAILURE: u8 = 5;
const SSH_AGENTC_REQUEST_IDENTITIES: u8 = 11;
const SSH_AGENT_IDENTITIES_ANSWER: u8 = 12;
const SSH_AGENTC_SIGN_REQUEST: u8 = 13;
const SSH_AGENT_SIGN_RESPONSE: u8 = 14;

/// Largest agent reply read (a list of many keys with long comments fits easily).
const REPLY_CAP: usize = 256 << 10;

/// The longest request OpenSSH's ssh-agent reads (its `AGENT_MAX_LEN`, 256 KiB). rn asks no
/// agent for more, whatever others might take.
const REQUEST_CAP: usize = 256 << 10;

/// The largest message one signing request can carry: the request is its type byte, the
/// Ed25519 key blob (4 + 51 bytes), the message (4 + its length) and the flags (4).
pub const MESSAGE_CAP: usize = REQUEST_CAP - (1 + 4 + 51 + 4 + 4);

/// How long one request may take: a hardware token waits for a touch or a PIN.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The agent could not be reached, or answered something rn cannot use.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// `$SSH_AUTH_SOCK` is not set.
    #[error(
        "SSH_AUTH_SOCK is not set: start an agent (eval \"$(ssh-agent)\") and add the key (ssh-add KEY)"
    )]
    NoSocket,
    /// The socket could not be used.
    #[error("ssh-agent at {path}: {error}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// A reply that does not decode.
    #[error("ssh-agent at {path}: {detail}")]
    Protocol {
        /// The socket.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The agent refused to sign (locked, the key was removed, the touch or PIN was declined).
    #[error(
        "ssh-agent at {path} refused to sign with {fingerprint} (locked agent, key removed, or confirmation declined)"
    )]
    Refused {
        /// The socket.
        path: PathBuf,
        /// The key asked for.
        fingerprint: String,
    },
}

/// An Ed25519 identity the agent holds.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The public key.
    pub key: ApproverKey,
    /// The agent's comment for it (often the key file's name or an email address).
    pub comment: String,
}

/// A connection to the agent.
pub struct Agent {
    path: PathBuf,
    stream: UnixStream,
}

impl Agent {
    /// Connects to the agent `$SSH_AUTH_SOCK` names.
    pub fn connect() -> Result<Agent, AgentError> {
        let path = std::env::var_os("SSH_AUTH_SOCK")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .ok_or(AgentError::NoSocket)?;
        let io = |error| AgentError::Io {
            path: path.clone(),
            error,
        };
        let stream = UnixStream::connect(&path).map_err(io)?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT)).map_err(io)?;
        stream
            .set_write_timeout(Some(REQUEST_TIMEOUT))
            .map_err(io)?;
        Ok(Agent { path, stream })
    }

    fn protocol(&self, detail: impl Into<String>) -> AgentError {
        AgentError::Protocol {
            path: self.path.clone(),
            detail: detail.into(),
        }
    }

    /// Sends one request (its type byte and body) and returns the reply's type and body.
    fn request(&mut self, kind: u8, body: &[u8]) -> Result<(u8, Vec<u8>), AgentError> {
        let io = |path: &PathBuf, error| AgentError::Io {
            path: path.clone(),
            error,
        };
        let len = u32::try_from(body.len() + 1).map_err(|_| self.protocol("request too long"))?;
        let mut frame = Vec::with_capacity(body.len() + 5);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.push(kind);
        frame.extend_from_slice(body);
        self.stream
            .write_all(&frame)
            .map_err(|e| io(&self.path, e))?;
        let mut head = [0u8; 4];
        self.stream
            .read_exact(&mut head)
            .map_err(|e| io(&self.path, e))?;
        let len = u32::from_be_bytes(head) as usize;
        if len == 0 || len > REPLY_CAP {
            return Err(self.protocol(format!("a reply of {len} bytes")));
        }
        let mut reply = vec![0u8; len];
        self.stream
            .read_exact(&mut reply)
            .map_err(|e| io(&self.path, e))?;
        let body = reply.split_off(1);
        Ok((reply[0], body))
    }

    /// The Ed25519 identities the agent holds, in its order; keys of other types are skipped.
    pub fn identities(&mut self) -> Result<Vec<Identity>, AgentError> {
        let (kind, body) = self.request(SSH_AGENTC_REQUEST_IDENTITIES, &[])?;
        if kind != SSH_AGENT_IDENTITIES_ANSWER {
            return Err(self.protocol(format!("answered the identity list with message {kind}")));
        }
        let bad = |e: ssh_key::encoding::Error| self.protocol(format!("identity list: {e}"));
        let mut r = body.as_slice();
        let count = u32::decode(&mut r).map_err(bad)?;
        let mut out = Vec::new();
        for _ in 0..count {
            let blob = Vec::<u8>::decode(&mut r).map_err(bad)?;
            let comment = String::decode(&mut r).map_err(bad)?;
            // A key type this build of ssh-key does not know is skipped like any non-Ed25519.
            let Ok(data) = KeyData::decode(&mut blob.as_slice()) else {
                continue;
            };
            if let Some(ed) = data.ed25519()
                && let Ok(key) = ApproverKey::from_bytes(ed.0)
            {
                out.push(Identity { key, comment });
            }
        }
        if !r.is_finished() {
            return Err(self.protocol("identity list: bytes after the last key"));
        }
        Ok(out)
    }

    /// The agent's Ed25519 signature of `message` by `key`.
    pub fn sign(&mut self, key: &ApproverKey, message: &[u8]) -> Result<Sig, AgentError> {
        let blob = KeyData::Ed25519(Ed25519PublicKey(*key.as_bytes()));
        let mut key_blob = Vec::new();
        let mut body = Vec::new();
        let enc = |e: ssh_key::Error| self.protocol(format!("encoding the request: {e}"));
        blob.encode(&mut key_blob).map_err(|e| enc(e.into()))?;
        key_blob
            .as_slice()
            .encode(&mut body)
            .map_err(|e| enc(e.into()))?;
        message.encode(&mut body).map_err(|e| enc(e.into()))?;
        0u32.encode(&mut body).map_err(|e| enc(e.into()))?;
        let (kind, reply) = self.request(SSH_AGENTC_SIGN_REQUEST, &body)?;
        match kind {
            SSH_AGENT_SIGN_RESPONSE => {}
            SSH_AGENT_FAILURE => {
                return Err(AgentError::Refused {
                    path: self.path.clone(),
                    fingerprint: crate::keys::fingerprint(key),
                });
            }
            other => {
                return Err(
                    self.protocol(format!("answered a signing request with message {other}"))
                );
            }
        }
        let mut r = reply.as_slice();
        let blob =
            Vec::<u8>::decode(&mut r).map_err(|e| self.protocol(format!("signature: {e}")))?;
        let sig = Signature::decode(&mut blob.as_slice())
            .map_err(|e| self.protocol(format!("signature: {e}")))?;
        if sig.algorithm() != Algorithm::Ed25519 {
            return Err(self.protocol(format!("a {} signature, not Ed25519", sig.algorithm())));
        }
        let bytes: [u8; 64] = sig
            .as_bytes()
            .try_into()
            .map_err(|_| self.protocol("an Ed25519 signature that is not 64 bytes"))?;
        // Checked like any signature from outside: by the gate, before the document is written
        // (`rn member sign`).
        Ok(Sig::from_bytes(bytes))
    }
}
