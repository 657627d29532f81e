//! One HTTP/1.1 request (a POST, or a channel API's GET) to an address that was already resolved (and, for a tenant's URL,
//! checked): over TCP, or TLS (rustls, the Mozilla roots plus any configured in
//! `sop.tls_roots`) with the URL's host name for SNI and certificate checks. A new
//! connection per call, so the call goes exactly where the check said it may.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{Request, StatusCode, body::Bytes};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::{
    TlsConnector,
    rustls::{
        ClientConfig, RootCertStore,
        pki_types::{CertificateDer, ServerName, pem::PemObject},
    },
};

use crate::outbound::Target;

/// How many bytes of a response body are kept (for a delivery log); the rest is not read.
pub const HEAD_BYTES: usize = 256;

/// What a receiver answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    /// The `Retry-After` header, as sent.
    pub retry_after: Option<String>,
    /// The first bytes of the body ([`HEAD_BYTES`] unless the caller asked for more; fewer
    /// when it ended sooner).
    pub head: Vec<u8>,
}

/// The TLS settings every call of a host shares.
#[derive(Clone)]
pub struct Transport {
    tls: Arc<ClientConfig>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transport")
    }
}

impl Transport {
    /// The Mozilla roots, plus the PEM certificates of `extra_roots` (an on-premise CA).
    pub fn new(extra_roots: Option<&std::path::Path>) -> Result<Transport, String> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = extra_roots {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read sop.tls_roots {}: {e}", path.display()))?;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("sop.tls_roots {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("sop.tls_roots {}: {e}", path.display()))?;
                added += 1;
            }
            if added == 0 {
                return Err(format!(
                    "sop.tls_roots {} holds no certificate",
                    path.display()
                ));
            }
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Transport { tls: Arc::new(tls) })
    }

    /// POSTs `request` (its URI the path, its `Host` header set) to `addr`, within
    /// `timeout`; answers the status, `Retry-After` and the body's first bytes, or why there
    /// is no answer.
    pub async fn post(
        &self,
        target: &Target,
        addr: SocketAddr,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Answer, String> {
        self.call(target, addr, request, timeout, HEAD_BYTES).await
    }

    /// Sends `request` (any method; its URI the path, its `Host` header set) to `addr`
    /// within `timeout`, keeping up to `limit` bytes of the answer's body: for a channel's
    /// API, whose answers are read in full.
    pub async fn call(
        &self,
        target: &Target,
        addr: SocketAddr,
        request: Request<Full<Bytes>>,
        timeout: Duration,
        limit: usize,
    ) -> Result<Answer, String> {
        tokio::time::timeout(timeout, self.exchange(target, addr, request, limit))
            .await
            .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
    }

    /// POSTs a JSON `body` with `headers` (besides `host`, `content-type` and
    /// `user-agent`) to `target` at `addr`, within `timeout`.
    pub async fn post_json(
        &self,
        target: &Target,
        addr: SocketAddr,
        headers: &[(&str, String)],
        body: String,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let mut request = Request::post(target.path.as_str())
            .header("host", target.host_header())
            .header("content-type", "application/json")
            .header("user-agent", "Shoal-Webhooks/1");
        for (k, v) in headers {
            request = request.header(*k, v.as_str());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("bad request: {e}"))?;
        self.post(target, addr, request, timeout).await
    }

    async fn exchange(
        &self,
        target: &Target,
        addr: SocketAddr,
        request: Request<Full<Bytes>>,
        limit: usize,
    ) -> Result<Answer, String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        if target.https {
            let name = ServerName::try_from(target.host.clone())
                .map_err(|e| format!("`{}` cannot be checked for TLS: {e}", target.host))?;
            let tls = TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {} failed: {e}", target.host))?;
            send(TokioIo::new(tls), request, limit).await
        } else {
            send(TokioIo::new(tcp), request, limit).await
        }
    }
}

async fn send<I>(io: I, request: Request<Full<Bytes>>, limit: usize) -> Result<Answer, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    let driver = tokio::spawn(connection);
    let answer = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("the request failed: {e}"))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // only the first bytes of the body are read (a receiver cannot make the host
        // buffer what it streams); a body that fails midway still leaves the status
        let mut body = response.into_body();
        let mut head = Vec::new();
        while head.len() < limit {
            use http_body_util::BodyExt as _;
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        let room = limit - head.len();
                        head.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                _ => break,
            }
        }
        Ok(Answer {
            status,
            retry_after,
            head,
        })
    }
    .await;
    // the connection is closed either way
    driver.abort();
    answer
}
