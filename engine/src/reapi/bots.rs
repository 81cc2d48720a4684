//! The Remote Workers API (`google.devtools.remoteworkers.v1test2`), the
//! part a bot uses: `CreateBotSession` and `UpdateBotSession`. No crate
//! carries these definitions; they are written here from the public
//! `bots.proto` and `worker.proto`, with the field numbers of the
//! specification (BuildGrid implements the service).

use bazel_remote_apis::google::protobuf::{Any, Timestamp};
use bazel_remote_apis::google::rpc::Status;
use tonic::codegen::http;

/// A bot's session with the service: its leases travel in it both ways.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct BotSession {
    /// Set by the service when it creates the session.
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub bot_id: String,
    #[prost(enumeration = "BotStatus", tag = "3")]
    pub status: i32,
    #[prost(message, optional, tag = "4")]
    pub worker: Option<Worker>,
    #[prost(message, repeated, tag = "5")]
    pub leases: Vec<Lease>,
    #[prost(message, optional, tag = "6")]
    pub expire_time: Option<Timestamp>,
    #[prost(string, tag = "7")]
    pub version: String,
}

/// One piece of work: for an REAPI service, an `Action` (or its digest)
/// in `payload`, and the `ActionResult` in `result` when done.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Lease {
    #[prost(string, tag = "7")]
    pub id: String,
    #[prost(message, optional, tag = "8")]
    pub payload: Option<Any>,
    #[prost(message, optional, tag = "9")]
    pub result: Option<Any>,
    #[prost(enumeration = "LeaseState", tag = "2")]
    pub state: i32,
    #[prost(message, optional, tag = "3")]
    pub status: Option<Status>,
    #[prost(message, optional, tag = "4")]
    pub requirements: Option<Worker>,
    #[prost(message, optional, tag = "5")]
    pub expire_time: Option<Timestamp>,
}

/// What a bot offers: its properties (the service matches actions'
/// platform properties against them).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Worker {
    #[prost(message, repeated, tag = "1")]
    pub devices: Vec<Device>,
    #[prost(message, repeated, tag = "2")]
    pub properties: Vec<Property>,
    #[prost(message, repeated, tag = "3")]
    pub configs: Vec<Property>,
}

/// A device of a worker (the machine itself, for strata).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Device {
    #[prost(string, tag = "1")]
    pub handle: String,
    #[prost(message, repeated, tag = "2")]
    pub properties: Vec<Property>,
}

/// A key and a value (`Worker.Property`, `Worker.Config`, `Device.Property`).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Property {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CreateBotSessionRequest {
    /// The instance name.
    #[prost(string, tag = "1")]
    pub parent: String,
    #[prost(message, optional, tag = "2")]
    pub bot_session: Option<BotSession>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct UpdateBotSessionRequest {
    /// The session's name, as the service gave it.
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub bot_session: Option<BotSession>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum BotStatus {
    Unspecified = 0,
    Ok = 1,
    Unhealthy = 2,
    HostRebooting = 3,
    BotTerminating = 4,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum LeaseState {
    Unspecified = 0,
    Pending = 1,
    Active = 2,
    Completed = 4,
    Cancelled = 5,
}

/// A client of the `Bots` service.
#[derive(Clone)]
pub struct BotsClient {
    inner: tonic::client::Grpc<super::Channel>,
}

impl BotsClient {
    pub fn new(channel: super::Channel) -> BotsClient {
        BotsClient {
            inner: tonic::client::Grpc::new(channel),
        }
    }

    pub async fn create_bot_session(
        &mut self,
        request: tonic::Request<CreateBotSessionRequest>,
    ) -> Result<tonic::Response<BotSession>, tonic::Status> {
        self.unary(request, "/google.devtools.remoteworkers.v1test2.Bots/CreateBotSession")
            .await
    }

    pub async fn update_bot_session(
        &mut self,
        request: tonic::Request<UpdateBotSessionRequest>,
    ) -> Result<tonic::Response<BotSession>, tonic::Status> {
        self.unary(request, "/google.devtools.remoteworkers.v1test2.Bots/UpdateBotSession")
            .await
    }

    async fn unary<Q: prost::Message + 'static, R: prost::Message + Default + 'static>(
        &mut self,
        request: tonic::Request<Q>,
        path: &'static str,
    ) -> Result<tonic::Response<R>, tonic::Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("the service is not ready: {e}")))?;
        let codec = tonic_prost::ProstCodec::default();
        self.inner
            .unary(request, http::uri::PathAndQuery::from_static(path), codec)
            .await
    }
}
