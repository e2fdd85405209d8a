//! The direct channel between a consumer and a provider's agent: Noise IK
//! (`Noise_IK_25519_ChaChaPoly_SHA256`) over TCP, both static keys being the participants'
//! did:keys. The consumer pins the provider's key (from its contract); the agent learns the
//! consumer's key in the first message and admits it only with a credential issued to that key.
//! Frames are a 2-byte big-endian length and a Noise message. The consumer's first transport
//! message is a fixed confirmation: only the holder of the handshake's ephemeral key can make
//! it, so a replayed first handshake message (which an eavesdropper can send again) never gets a
//! channel: the agent starts nothing before it (no service connection, no process, no record).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;
use snow::{Builder, TransportState};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use identity::{x25519_public, x25519_secret, IdentityError};

const PATTERN: &str = "Noise_IK_25519_ChaChaPoly_SHA256";
const MAX_FRAME: usize = 65535;
/// Plaintext per transport message (a Noise message carries at most 65535 bytes with its tag).
const CHUNK: usize = 16 * 1024;
/// The consumer's first transport message: proof it holds the handshake's keys.
const CONFIRM: &[u8] = b"mercato-channel-confirm/1";

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(transparent)]
    Key(#[from] IdentityError),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("the handshake failed (wrong provider key, or not a Mercato agent): {0}")]
    Noise(#[from] snow::Error),
    #[error("the provider refused the connection: {0}")]
    Refused(String),
    #[error("the peer closed the connection during the handshake")]
    Closed,
    #[error("the peer did not confirm the handshake (a replayed first message?)")]
    Unconfirmed,
}

async fn write_frame(w: &mut OwnedWriteHalf, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(msg).await?;
    w.flush().await
}

async fn read_frame(r: &mut OwnedReadHalf) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    r.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

/// An established channel.
pub struct Channel {
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    noise: Arc<Mutex<TransportState>>,
    session: [u8; 32],
}

/// The handshake hash both ends share: names the session in records and receipts.
fn session_of(hs: &snow::HandshakeState) -> [u8; 32] {
    let mut id = [0u8; 32];
    let h = hs.get_handshake_hash();
    let n = h.len().min(32);
    id[..n].copy_from_slice(&h[..n]);
    id
}

fn lock(noise: &Mutex<TransportState>) -> std::sync::MutexGuard<'_, TransportState> {
    noise.lock().unwrap_or_else(|e| e.into_inner())
}

impl Channel {
    /// The session's id, the same at both ends (no third party can make two sessions share one).
    pub fn session(&self) -> [u8; 32] {
        self.session
    }

    pub async fn send(&mut self, data: &[u8]) -> Result<(), ChannelError> {
        for chunk in data.chunks(CHUNK) {
            let mut buf = vec![0u8; MAX_FRAME];
            let n = lock(&self.noise).write_message(chunk, &mut buf)?;
            write_frame(&mut self.write, &buf[..n]).await?;
        }
        Ok(())
    }

    /// The next message; `None` when the peer closed.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, ChannelError> {
        let Some(frame) = read_frame(&mut self.read).await? else {
            return Ok(None);
        };
        let mut buf = vec![0u8; frame.len()];
        let n = lock(&self.noise).read_message(&frame, &mut buf)?;
        buf.truncate(n);
        Ok(Some(buf))
    }
}

/// Bytes moved through a spliced channel.
#[derive(Debug, Default)]
pub struct Counters {
    /// From the consumer's side of the channel to the local stream.
    pub received: AtomicU64,
    /// From the local stream to the consumer's side.
    pub sent: AtomicU64,
}

/// Consumer side: connects to the agent at `addr`, pins `provider_did`'s key, sends `hello`
/// (the credential presentation) and returns the channel with the agent's answer.
pub async fn initiate(
    addr: &str,
    me: &SigningKey,
    provider_did: &str,
    hello: &[u8],
) -> Result<(Channel, Vec<u8>), ChannelError> {
    let params = PATTERN.parse()?;
    let mut hs = Builder::new(params)
        .local_private_key(&x25519_secret(me))
        .remote_public_key(&x25519_public(provider_did)?)
        .build_initiator()?;
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut read, mut write) = stream.into_split();
    let mut buf = vec![0u8; MAX_FRAME];
    let n = hs.write_message(hello, &mut buf)?;
    write_frame(&mut write, &buf[..n]).await?;
    let reply = read_frame(&mut read).await?.ok_or(ChannelError::Closed)?;
    let n = hs.read_message(&reply, &mut buf)?;
    let answer = buf[..n].to_vec();
    let session = session_of(&hs);
    let noise = Arc::new(Mutex::new(hs.into_transport_mode()?));
    let mut ch = Channel {
        read,
        write,
        noise,
        session,
    };
    // Confirms the handshake; after a refusal the agent has closed, and the answer says why.
    let _ = ch.send(CONFIRM).await;
    Ok((ch, answer))
}

/// What the agent decided about a connection: admit (with what to answer) or refuse (with why).
pub enum Decision<T> {
    Admit(T, Vec<u8>),
    Refuse(Vec<u8>),
}

/// Agent side: runs the handshake on `stream`; `decide` sees the consumer's X25519 key and its
/// presentation. A refused consumer gets the refusal, encrypted to its key, and the connection
/// ends.
pub async fn respond<T>(
    stream: TcpStream,
    me: &SigningKey,
    decide: impl FnOnce(&[u8], &[u8]) -> Decision<T>,
) -> Result<Option<(Channel, T)>, ChannelError> {
    let params = PATTERN.parse()?;
    let mut hs = Builder::new(params)
        .local_private_key(&x25519_secret(me))
        .build_responder()?;
    stream.set_nodelay(true)?;
    let (mut read, mut write) = stream.into_split();
    let first = read_frame(&mut read).await?.ok_or(ChannelError::Closed)?;
    let mut buf = vec![0u8; MAX_FRAME];
    let n = hs.read_message(&first, &mut buf)?;
    let remote = hs
        .get_remote_static()
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let (admitted, reply) = match decide(&remote, &buf[..n]) {
        Decision::Admit(t, reply) => (Some(t), reply),
        Decision::Refuse(reply) => (None, reply),
    };
    let n = hs.write_message(&reply, &mut buf)?;
    write_frame(&mut write, &buf[..n]).await?;
    let Some(t) = admitted else {
        return Ok(None);
    };
    let session = session_of(&hs);
    let noise = Arc::new(Mutex::new(hs.into_transport_mode()?));
    let mut ch = Channel {
        read,
        write,
        noise,
        session,
    };
    // Nothing happens for this consumer before it proves it holds the handshake's keys.
    match ch.recv().await {
        Ok(Some(m)) if m == CONFIRM => Ok(Some((ch, t))),
        Ok(None) => Err(ChannelError::Closed),
        _ => Err(ChannelError::Unconfirmed),
    }
}

/// Moves bytes both ways between the channel and `local` until either side closes or `stop`
/// completes (a revoked credential); counts them.
pub async fn splice(
    channel: Channel,
    local: TcpStream,
    counters: Arc<Counters>,
    stop: impl Future<Output = ()>,
) -> Result<(), ChannelError> {
    let (r, w) = local.into_split();
    splice_io(channel, r, w, counters, stop).await
}

/// `splice` with any byte source and sink (a socket's halves, a process's stdout and stdin).
pub async fn splice_io(
    channel: Channel,
    mut local_read: impl AsyncRead + Unpin,
    mut local_write: impl AsyncWrite + Unpin,
    counters: Arc<Counters>,
    stop: impl Future<Output = ()>,
) -> Result<(), ChannelError> {
    let Channel {
        mut read,
        mut write,
        noise,
        ..
    } = channel;
    let noise_in = noise.clone();
    let c_in = counters.clone();
    let inbound = async move {
        while let Some(frame) = read_frame(&mut read).await? {
            let mut buf = vec![0u8; frame.len()];
            let n = lock(&noise_in).read_message(&frame, &mut buf)?;
            local_write.write_all(&buf[..n]).await?;
            c_in.received.fetch_add(n as u64, Ordering::Relaxed);
        }
        let _ = local_write.shutdown().await;
        Ok::<_, ChannelError>(())
    };
    let outbound = async move {
        let mut chunk = vec![0u8; CHUNK];
        let mut buf = vec![0u8; MAX_FRAME];
        loop {
            let n = local_read.read(&mut chunk).await?;
            if n == 0 {
                let _ = write.shutdown().await;
                return Ok::<_, ChannelError>(());
            }
            let m = lock(&noise).write_message(&chunk[..n], &mut buf)?;
            write_frame(&mut write, &buf[..m]).await?;
            counters.sent.fetch_add(n as u64, Ordering::Relaxed);
        }
    };
    tokio::select! {
        r = async { tokio::try_join!(inbound, outbound).map(|_| ()) } => r,
        _ = stop => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pinned_keys_authenticate_both_ends_and_data_flows_both_ways() {
        let provider = SigningKey::generate(&mut rand::rngs::OsRng);
        let consumer = SigningKey::generate(&mut rand::rngs::OsRng);
        let impostor = SigningKey::generate(&mut rand::rngs::OsRng);
        let provider_did = identity::did_of(&provider.verifying_key());
        let consumer_x =
            x25519_public(identity::did_of(&consumer.verifying_key()).as_str()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let agent_key = provider.clone();
        let agent = tokio::spawn(async move {
            for _ in 0..2 {
                let (stream, _) = listener.accept().await.unwrap();
                let admitted = respond(stream, &agent_key, |remote, hello| {
                    if remote == consumer_x && hello == b"hello" {
                        Decision::Admit((), b"welcome".to_vec())
                    } else {
                        Decision::Refuse(b"no".to_vec())
                    }
                })
                .await
                .unwrap();
                if let Some((mut ch, ())) = admitted {
                    let id = ch.session();
                    ch.send(&id).await.unwrap();
                    while let Some(m) = ch.recv().await.unwrap() {
                        let mut back = m.clone();
                        back.reverse();
                        ch.send(&back).await.unwrap();
                    }
                }
            }
        });
        let (mut ch, answer) = initiate(&addr, &consumer, provider_did.as_str(), b"hello")
            .await
            .unwrap();
        assert_eq!(answer, b"welcome");
        // Both ends name the session alike.
        assert_eq!(ch.recv().await.unwrap().unwrap(), ch.session());
        ch.send(b"abc").await.unwrap();
        assert_eq!(ch.recv().await.unwrap().unwrap(), b"cba");
        drop(ch);
        // Another key is refused, and learns so only over the encrypted handshake.
        let (_, answer) = initiate(&addr, &impostor, provider_did.as_str(), b"hello")
            .await
            .unwrap();
        assert_eq!(answer, b"no");
        agent.await.unwrap();
        // A consumer pinning the wrong provider key cannot even complete the handshake.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = respond(stream, &provider, |_, _| Decision::Admit((), vec![])).await;
        });
        let wrong = identity::did_of(&impostor.verifying_key());
        assert!(initiate(&addr, &consumer, wrong.as_str(), b"hello")
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_replayed_first_message_gets_no_channel() {
        let provider = SigningKey::generate(&mut rand::rngs::OsRng);
        let consumer = SigningKey::generate(&mut rand::rngs::OsRng);
        let provider_did = identity::did_of(&provider.verifying_key());
        // What an eavesdropper saw: the consumer's first handshake message.
        let mut hs = Builder::new(PATTERN.parse().unwrap())
            .local_private_key(&x25519_secret(&consumer))
            .remote_public_key(&x25519_public(provider_did.as_str()).unwrap())
            .build_initiator()
            .unwrap();
        let mut first = vec![0u8; MAX_FRAME];
        let n = hs.write_message(b"hello", &mut first).unwrap();
        first.truncate(n);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let agent = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            respond(stream, &provider, |_, hello| {
                Decision::Admit(hello.to_vec(), b"welcome".to_vec())
            })
            .await
        });
        // Replayed as often as it likes, it is admitted by the credential check but gets no
        // channel: it cannot confirm.
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        write_frame(&mut write, &first).await.unwrap();
        assert!(read_frame(&mut read).await.unwrap().is_some(), "the reply");
        write_frame(&mut write, b"not a transport message")
            .await
            .unwrap();
        assert!(matches!(
            agent.await.unwrap(),
            Err(ChannelError::Unconfirmed)
        ));
    }
}
