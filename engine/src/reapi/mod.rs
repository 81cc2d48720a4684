//! Remote execution: RUN steps as actions of the Remote Execution API
//! (REAPI v2: Bazel, Buildbarn, BuildGrid…), executed by `strata worker`s
//! that serve the same service through the Remote Workers API.
//!
//! A step's action holds its parent state's layers in the input root as
//! their tars (whose CAS digests are their diff ids, so a layer is a CAS
//! object already), and `step.json`, the step itself; its one output is
//! `layer.tar`, the layer the step made. This module is the client of the
//! service's CAS, ByteStream, ActionCache and Execution services;
//! [`crate::exec::remote`] makes and runs actions, [`crate::exec::worker`]
//! is the bot.

pub mod bots;

use std::fmt;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::bytestream as bs;
use prost::Message;
use tonic::metadata::{Ascii, MetadataKey, MetadataValue};
pub use tonic::transport::Channel;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::error::{Error, Result};

/// Blobs up to this size go in batches; larger ones through ByteStream.
const BATCH_LIMIT: usize = 1 << 20;
/// ByteStream chunk size.
const CHUNK: usize = 1 << 20;
/// How often a call the service was too busy for is asked again.
const RETRIES: u32 = 5;

/// A connection to a REAPI service: its endpoint, instance and credentials.
pub struct Remote {
    rt: tokio::runtime::Runtime,
    channel: Channel,
    /// As the user wrote it (`grpc://HOST:PORT`), for messages.
    pub endpoint: String,
    /// The instance name (`--remote-instance`; often empty).
    pub instance: String,
    /// Sent with every call: the bearer token and `--remote-header`s.
    headers: Headers,
    /// `--remote-fallback`: a step the service fails to run runs locally.
    pub fallback: bool,
    /// What this connection did, for the build's summary.
    pub stats: Stats,
}

/// Counts of what a connection did.
#[derive(Debug, Default)]
pub struct Stats {
    /// Steps a worker executed for us.
    pub executed: AtomicU64,
    /// Steps whose result the ActionCache had.
    pub cached: AtomicU64,
    /// Bytes uploaded to the CAS (only blobs it lacked).
    pub sent: AtomicU64,
    /// Bytes downloaded from the CAS.
    pub received: AtomicU64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        write!(
            f,
            "{} steps executed, {} from the ActionCache; {} bytes sent to the CAS, {} received",
            n(&self.executed),
            n(&self.cached),
            n(&self.sent),
            n(&self.received)
        )
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("endpoint", &self.endpoint)
            .field("instance", &self.instance)
            .finish()
    }
}

/// Where a blob to upload comes from.
pub enum Blob {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// A REAPI digest of `bytes`.
pub fn digest_of(bytes: &[u8]) -> re::Digest {
    re::Digest {
        hash: crate::digest::Digest::of(bytes).hex().to_string(),
        size_bytes: bytes.len() as i64,
    }
}

/// A message's encoding and its digest.
pub fn encoded<M: Message>(message: &M) -> (Vec<u8>, re::Digest) {
    let bytes = message.encode_to_vec();
    let digest = digest_of(&bytes);
    (bytes, digest)
}

/// `call`, asked again while the service is busy (RESOURCE_EXHAUSTED:
/// BuildGrid refuses calls beyond its threads) or briefly away
/// (UNAVAILABLE), up to [`RETRIES`] times with pauses doubling from
/// `pause` (as Bazel's `--remote_retries`); other outcomes at once.
async fn retry<T, F, Fut>(mut call: F, mut pause: Duration) -> std::result::Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, tonic::Status>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(status)
                if attempt < RETRIES
                    && matches!(status.code(), tonic::Code::ResourceExhausted | tonic::Code::Unavailable) =>
            {
                attempt += 1;
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            outcome => return outcome,
        }
    }
}

fn short(d: &re::Digest) -> String {
    format!("sha256:{}/{}", &d.hash[..d.hash.len().min(12)], d.size_bytes)
}

/// gRPC metadata sent with every call.
type Headers = Vec<(MetadataKey<Ascii>, MetadataValue<Ascii>)>;

/// What a connection presents beyond the service's address (the options
/// follow Bazel's `--remote_header`, `--tls_certificate`,
/// `--tls_client_certificate` and `--tls_client_key`).
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    /// Sent as `authorization: Bearer TOKEN` on every call.
    pub token: Option<String>,
    /// Headers sent with every call, as `(name, value)`.
    pub headers: Vec<(String, String)>,
    /// PEM certificates of the authorities a `grpcs://` service's
    /// certificate must chain to (instead of the system's).
    pub tls_ca: Option<Vec<u8>>,
    /// A PEM certificate and its key, presented to the service (mutual TLS).
    pub tls_client: Option<(Vec<u8>, Vec<u8>)>,
}

impl Credentials {
    fn uses_tls(&self) -> bool {
        self.tls_ca.is_some() || self.tls_client.is_some()
    }

    /// The headers as gRPC metadata; a name or value gRPC cannot carry is
    /// an error naming it.
    fn metadata(&self) -> std::result::Result<Headers, String> {
        let token = self
            .token
            .iter()
            .map(|t| ("authorization".to_string(), format!("Bearer {t}")));
        token
            .chain(self.headers.iter().cloned())
            .map(|(name, value)| {
                let key = MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
                    .map_err(|_| format!("`{name}` is not a valid header name"))?;
                let value = value
                    .parse()
                    .map_err(|_| format!("the value of header `{name}` is not printable ASCII"))?;
                Ok((key, value))
            })
            .collect()
    }

    /// The TLS configuration for a `grpcs://` service: the given
    /// authorities or the system's, and the client's certificate if any.
    fn tls(&self) -> ClientTlsConfig {
        let config = match &self.tls_ca {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        match &self.tls_client {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        }
    }
}

impl Remote {
    /// Connects to `endpoint` (`grpc://HOST:PORT`, `grpcs://HOST:PORT` for
    /// TLS, or `HOST:PORT`); an unreachable service, or one whose
    /// certificate is not trusted, is an error here, before anything is
    /// built.
    pub fn connect(endpoint: &str, instance: &str, credentials: &Credentials) -> Result<Remote> {
        let fail = |message: String| Error::Remote {
            endpoint: endpoint.to_string(),
            message,
        };
        let (url, tls) = match endpoint.split_once("://") {
            None => (format!("http://{endpoint}"), false),
            Some(("grpc", rest)) | Some(("http", rest)) => (format!("http://{rest}"), false),
            Some(("grpcs", rest)) | Some(("https", rest)) => (format!("https://{rest}"), true),
            Some((scheme, _)) => {
                return Err(fail(format!(
                    "unknown scheme `{scheme}://` (expected grpc://HOST:PORT or grpcs://HOST:PORT)"
                )))
            }
        };
        if !tls && credentials.uses_tls() {
            return Err(fail(
                "TLS certificates are given but the endpoint is not grpcs://: \
                 name it grpcs://HOST:PORT, or drop the certificates"
                    .into(),
            ));
        }
        let headers = credentials.metadata().map_err(fail)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("strata-reapi")
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start the gRPC runtime: {e}")))?;
        let channel = rt.block_on(async {
            let mut endpoint = tonic::transport::Endpoint::from_shared(url.clone())
                .map_err(|e| format!("not an address: {e}"))?
                .connect_timeout(Duration::from_secs(10))
                .tcp_nodelay(true);
            if tls {
                endpoint = endpoint
                    .tls_config(credentials.tls())
                    .map_err(|e| format!("TLS: {}", crate::error::chain(&e)))?;
            }
            endpoint
                .connect()
                .await
                .map_err(|e| format!("cannot connect: {}", crate::error::chain(&e)))
        });
        let channel = channel.map_err(fail)?;
        Ok(Remote {
            rt,
            channel,
            endpoint: endpoint.to_string(),
            instance: instance.to_string(),
            headers,
            fallback: false,
            stats: Stats::default(),
        })
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Runs a future on this connection's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    /// A request carrying the credentials.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        for (key, value) in &self.headers {
            request.metadata_mut().append(key.clone(), value.clone());
        }
        request
    }

    /// An error of this service: what went wrong, in `message`.
    pub fn fail(&self, message: impl Into<String>) -> Error {
        Error::Remote {
            endpoint: self.endpoint.clone(),
            message: message.into(),
        }
    }

    /// An error of a call to the service.
    pub fn error(&self, what: &str, status: tonic::Status) -> Error {
        self.fail(format!("{what}: {} ({:?})", status.message(), status.code()))
    }

    /// `call`, asked again while the service is busy (see [`retry`]);
    /// its failure is an error named `what`.
    async fn retrying<T, F, Fut>(&self, what: &str, call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, tonic::Status>>,
    {
        retry(call, Duration::from_millis(100))
            .await
            .map_err(|status| self.error(what, status))
    }

    fn cas(&self) -> re::content_addressable_storage_client::ContentAddressableStorageClient<Channel> {
        re::content_addressable_storage_client::ContentAddressableStorageClient::new(self.channel())
            .max_decoding_message_size(64 << 20)
    }

    /// The digests of `digests` the CAS does not hold.
    pub fn find_missing(&self, digests: &[re::Digest]) -> Result<Vec<re::Digest>> {
        let response = self.block_on(self.retrying("FindMissingBlobs", || {
            let mut cas = self.cas();
            let request = self.request(re::FindMissingBlobsRequest {
                instance_name: self.instance.clone(),
                blob_digests: digests.to_vec(),
                ..Default::default()
            });
            async move { cas.find_missing_blobs(request).await }
        }))?;
        Ok(response.into_inner().missing_blob_digests)
    }

    /// Uploads those of `blobs` the CAS lacks; returns the bytes sent.
    pub fn upload_missing(&self, blobs: Vec<(re::Digest, Blob)>) -> Result<u64> {
        let digests: Vec<re::Digest> = blobs.iter().map(|(d, _)| d.clone()).collect();
        let missing: std::collections::HashSet<String> =
            self.find_missing(&digests)?.into_iter().map(|d| d.hash).collect();
        let mut sent = 0;
        let mut batch: Vec<re::batch_update_blobs_request::Request> = Vec::new();
        let mut batch_size = 0;
        let mut seen = std::collections::HashSet::new();
        for (digest, blob) in blobs {
            if !missing.contains(&digest.hash) || !seen.insert(digest.hash.clone()) {
                continue;
            }
            sent += digest.size_bytes as u64;
            if (digest.size_bytes as usize) < BATCH_LIMIT / 2 {
                let data = match blob {
                    Blob::Bytes(bytes) => bytes,
                    Blob::File(path) => std::fs::read(&path).map_err(Error::io("read", &path))?,
                };
                if batch_size + data.len() > BATCH_LIMIT {
                    self.batch_update(std::mem::take(&mut batch))?;
                    batch_size = 0;
                }
                batch_size += data.len();
                batch.push(re::batch_update_blobs_request::Request {
                    digest: Some(digest),
                    data,
                    ..Default::default()
                });
            } else {
                self.write_stream(&digest, blob)?;
            }
        }
        if !batch.is_empty() {
            self.batch_update(batch)?;
        }
        self.stats.sent.fetch_add(sent, Ordering::Relaxed);
        Ok(sent)
    }

    fn batch_update(&self, requests: Vec<re::batch_update_blobs_request::Request>) -> Result<()> {
        let response = self.block_on(self.retrying("BatchUpdateBlobs", || {
            let mut cas = self.cas();
            let request = self.request(re::BatchUpdateBlobsRequest {
                instance_name: self.instance.clone(),
                requests: requests.clone(),
                ..Default::default()
            });
            async move { cas.batch_update_blobs(request).await }
        }))?;
        for r in response.into_inner().responses {
            if let Some(status) = r.status.filter(|s| s.code != 0) {
                return Err(self.fail(format!(
                    "BatchUpdateBlobs refused {}: {}",
                    r.digest.as_ref().map(short).unwrap_or_default(),
                    status.message
                )));
            }
        }
        Ok(())
    }

    /// The instance's part of a ByteStream resource name (`NAME/`, or nothing).
    fn instance_prefix(&self) -> String {
        if self.instance.is_empty() {
            String::new()
        } else {
            format!("{}/", self.instance)
        }
    }

    fn resource(&self, digest: &re::Digest) -> String {
        format!("{}blobs/{}/{}", self.instance_prefix(), digest.hash, digest.size_bytes)
    }

    /// A big blob through ByteStream `Write`, read chunk by chunk.
    fn write_stream(&self, digest: &re::Digest, blob: Blob) -> Result<()> {
        let what = format!("ByteStream.Write {}", short(digest));
        // Each attempt writes the whole blob again, under a fresh upload name.
        let attempt = || {
            let name = format!(
                "{}uploads/{}/blobs/{}/{}",
                self.instance_prefix(),
                uuid_like(),
                digest.hash,
                digest.size_bytes
            );
            let reader: std::io::Result<Box<dyn Read + Send>> = match &blob {
                Blob::Bytes(bytes) => Ok(Box::new(std::io::Cursor::new(bytes.clone()))),
                Blob::File(path) => std::fs::File::open(path).map(|f| Box::new(f) as Box<dyn Read + Send>),
            };
            let mut client = bs::byte_stream_client::ByteStreamClient::new(self.channel());
            let metadata = std::mem::take(self.request(()).metadata_mut());
            let total = digest.size_bytes;
            async move {
                let mut reader =
                    reader.map_err(|e| tonic::Status::failed_precondition(format!("cannot read it: {e}")))?;
                let mut offset = 0i64;
                let mut first = true;
                let chunks = std::iter::from_fn(move || {
                    if offset >= total && !first {
                        return None;
                    }
                    let mut data = vec![0u8; CHUNK.min((total - offset) as usize)];
                    if reader.read_exact(&mut data).is_err() {
                        // A short file: the server sees fewer bytes than promised and refuses.
                        return None;
                    }
                    let request = bs::WriteRequest {
                        resource_name: if first { name.clone() } else { String::new() },
                        write_offset: offset,
                        finish_write: offset + data.len() as i64 >= total,
                        data,
                    };
                    offset += request.data.len() as i64;
                    first = false;
                    Some(request)
                });
                let mut streaming = tonic::Request::new(tokio_stream::iter(chunks));
                *streaming.metadata_mut() = metadata;
                client.write(streaming).await
            }
        };
        let response = self.block_on(self.retrying(&what, attempt))?;
        let committed = response.into_inner().committed_size;
        if committed != digest.size_bytes {
            return Err(self.fail(format!(
                "ByteStream.Write {}: the service committed {committed} bytes",
                short(digest)
            )));
        }
        Ok(())
    }

    /// Writes the blob `digest` to `out` (ByteStream `Read`); the caller
    /// checks the bytes against the digest.
    pub fn download(&self, digest: &re::Digest, out: &mut dyn Write) -> Result<()> {
        let what = format!("ByteStream.Read {}", short(digest));
        self.block_on(async {
            let mut stream = self
                .retrying(&what, || {
                    let mut client = bs::byte_stream_client::ByteStreamClient::new(self.channel());
                    let request = self.request(bs::ReadRequest {
                        resource_name: self.resource(digest),
                        read_offset: 0,
                        read_limit: 0,
                    });
                    async move { client.read(request).await }
                })
                .await?
                .into_inner();
            while let Some(chunk) = stream.message().await.map_err(|s| self.error(&what, s))? {
                self.stats
                    .received
                    .fetch_add(chunk.data.len() as u64, Ordering::Relaxed);
                out.write_all(&chunk.data)
                    .map_err(|e| self.fail(format!("{what}: cannot write what it sends: {e}")))?;
            }
            Ok(())
        })
    }

    /// A small blob's bytes, checked against its digest.
    pub fn read_blob(&self, digest: &re::Digest) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(digest.size_bytes.max(0) as usize);
        self.download(digest, &mut bytes)?;
        if digest_of(&bytes) != *digest {
            return Err(self.fail(format!("the CAS sent other bytes for {}", short(digest))));
        }
        Ok(bytes)
    }

    /// A message stored in the CAS.
    pub fn read_message<M: Message + Default>(&self, digest: &re::Digest) -> Result<M> {
        let bytes = self.read_blob(digest)?;
        M::decode(bytes.as_slice()).map_err(|e| {
            self.fail(format!(
                "the blob {} is not a {}: {e}",
                short(digest),
                std::any::type_name::<M>()
            ))
        })
    }

    /// The ActionCache's result for `action`, if it has one.
    pub fn cached_result(&self, action: &re::Digest) -> Result<Option<re::ActionResult>> {
        let lookup = self.retrying("GetActionResult", || {
            let mut client = re::action_cache_client::ActionCacheClient::new(self.channel());
            let request = self.request(re::GetActionResultRequest {
                instance_name: self.instance.clone(),
                action_digest: Some(action.clone()),
                inline_stdout: true,
                inline_stderr: true,
                ..Default::default()
            });
            async move {
                match client.get_action_result(request).await {
                    Ok(response) => Ok(Some(response.into_inner())),
                    // A miss is an answer, not a failure.
                    Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
                    Err(status) => Err(status),
                }
            }
        });
        self.block_on(lookup)
    }

    /// Executes `action` (whose blobs the CAS holds) and waits for its result.
    pub fn execute(&self, action: &re::Digest) -> Result<re::ActionResult> {
        let client = re::execution_client::ExecutionClient::new(self.channel());
        let done = self.block_on(async {
            let mut stream = self
                .retrying("Execute", || {
                    let mut client = client.clone();
                    let request = self.request(re::ExecuteRequest {
                        instance_name: self.instance.clone(),
                        action_digest: Some(action.clone()),
                        skip_cache_lookup: false,
                        ..Default::default()
                    });
                    async move { client.execute(request).await }
                })
                .await?
                .into_inner();
            let mut name = String::new();
            loop {
                match stream.message().await {
                    Ok(Some(operation)) if operation.done => return Ok(operation),
                    Ok(Some(operation)) => name = operation.name,
                    // The stream ended or broke before the end: wait on the operation.
                    Ok(None) | Err(_) if !name.is_empty() => {
                        stream = self
                            .retrying("WaitExecution", || {
                                let mut client = client.clone();
                                let request = self.request(re::WaitExecutionRequest { name: name.clone() });
                                async move { client.wait_execution(request).await }
                            })
                            .await?
                            .into_inner();
                    }
                    Ok(None) => {
                        return Err(self.fail("Execute: the service ended the stream before the action was done"))
                    }
                    Err(status) => return Err(self.error("Execute", status)),
                }
            }
        })?;
        use bazel_remote_apis::google::longrunning::operation::Result as Outcome;
        let failed = |status: &bazel_remote_apis::google::rpc::Status| {
            self.fail(format!(
                "the action failed on the service: {} (code {})",
                status.message, status.code
            ))
        };
        let response = match done.result {
            Some(Outcome::Response(any)) => re::ExecuteResponse::decode(any.value.as_slice())
                .map_err(|e| self.fail(format!("Execute: the response is not an ExecuteResponse: {e}")))?,
            Some(Outcome::Error(status)) => return Err(failed(&status)),
            None => return Err(self.fail("Execute: the operation is done but has no result")),
        };
        if let Some(status) = response.status.as_ref().filter(|s| s.code != 0) {
            return Err(failed(status));
        }
        response
            .result
            .ok_or_else(|| self.fail("Execute: the response has no result"))
    }
}

/// A unique name for an upload (ByteStream wants a UUID; any unique string
/// is accepted by the services, but a UUID's shape is what they document).
fn uuid_like() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_and_headers_go_with_every_call_and_bad_ones_are_named() {
        let credentials = Credentials {
            token: Some("t0k".into()),
            headers: vec![("X-Api-Key".into(), "k".into())],
            ..Credentials::default()
        };
        let metadata = |c: &Credentials| c.metadata();
        let headers: Vec<(String, String)> = metadata(&credentials)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            headers,
            [
                ("authorization".into(), "Bearer t0k".into()),
                ("x-api-key".into(), "k".into())
            ]
        );
        let bad = Credentials {
            headers: vec![("x-api-key".into(), "line\nbreak".into())],
            ..Credentials::default()
        };
        assert_eq!(
            metadata(&bad).unwrap_err(),
            "the value of header `x-api-key` is not printable ASCII"
        );
    }

    #[test]
    fn a_busy_service_is_asked_again_and_a_refusal_is_final() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let calls = std::cell::Cell::new(0);
        let busy_twice = || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                match n {
                    1 => Err(tonic::Status::resource_exhausted("Concurrent RPC limit exceeded!")),
                    2 => Err(tonic::Status::unavailable("restarting")),
                    _ => Ok(n),
                }
            }
        };
        assert_eq!(rt.block_on(retry(busy_twice, Duration::ZERO)).unwrap(), 3);

        calls.set(0);
        let denied = || {
            calls.set(calls.get() + 1);
            async { Err::<(), _>(tonic::Status::permission_denied("no")) }
        };
        let status = rt.block_on(retry(denied, Duration::ZERO)).unwrap_err();
        assert_eq!((status.code(), calls.get()), (tonic::Code::PermissionDenied, 1));

        calls.set(0);
        let always_busy = || {
            calls.set(calls.get() + 1);
            async { Err::<(), _>(tonic::Status::resource_exhausted("busy")) }
        };
        let status = rt.block_on(retry(always_busy, Duration::ZERO)).unwrap_err();
        assert_eq!(
            (status.code(), calls.get()),
            (tonic::Code::ResourceExhausted, 1 + RETRIES)
        );
    }

    #[test]
    fn certificates_without_grpcs_are_refused_before_connecting() {
        let credentials = Credentials {
            tls_ca: Some(b"-----BEGIN CERTIFICATE-----".to_vec()),
            ..Credentials::default()
        };
        let e = Remote::connect("grpc://127.0.0.1:1", "", &credentials).unwrap_err();
        assert_eq!(
            e.to_string(),
            "remote executor grpc://127.0.0.1:1: TLS certificates are given but the endpoint is not grpcs://: \
             name it grpcs://HOST:PORT, or drop the certificates"
        );
    }
}
