//! The Cluster service of the etcd v3 API: raftkv's membership as etcd's members.
//!
//! ```text
//!  member          ID = node id; name = the id as text once the node announced itself
//!                  (empty before: etcdctl shows it "unstarted"); peerURLs = its Raft address;
//!                  clientURLs = its announced gRPC address; isLearner
//!  MemberList      this node's view of the configuration (after a ReadIndex if linearizable)
//!  MemberAdd       on the leader: next unused id, Raft address through the log, AddLearner;
//!                  a voter is added as raftkv's `serve --join` adds one: as a learner that,
//!                  started with `raftkv serve --id ID --join ... --raft-addr PEER`, promotes
//!                  itself once it caught up
//!  MemberRemove    on the leader: Remove
//!  MemberPromote   on the leader: Promote (MEMBER_NOT_LEARNER, LEARNER_NOT_READY as etcd)
//!  MemberUpdate    on the leader: the member's Raft address through the log
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use raft_core::{ConfChange, ConfChangeError, Configuration, NodeId};
use raftkv_etcd_api::cluster_client::ClusterClient;
use raftkv_etcd_api::etcdserverpb::*;
use tonic::{Request, Response, Status};

use super::error::{self, serve_status};
use super::EtcdApi;
use crate::server::{ReadMode, ServeError};
use crate::store::Operation;

#[tonic::async_trait]
impl cluster_server::Cluster for EtcdApi {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        let address = peer_address(&request.get_ref().peer_ur_ls)?;
        if let Some(channel) = self.leader_channel(&request).await? {
            let answer = ClusterClient::new(channel)
                .member_add(self.forwarded(request))
                .await;
            return self.relay(answer);
        }
        let server = self.server();
        let configuration = self.configuration().await?;
        let raft_address = address.to_string();
        let taken = configuration
            .members()
            .any(|member| server.raft_address_of(member) == Some(address));
        if taken {
            return Err(error::PEER_URL_EXIST.status());
        }
        let id = next_unused_id(&configuration, server);
        // Every node (and any later leader) must be able to dial the newcomer: its address
        // goes through the log before it joins the configuration.
        let record = Operation::RaftAddress {
            node: id.0,
            raft_address: raft_address.clone(),
        };
        server
            .write(None, record)
            .await
            .map_err(|error| serve_status(&error))?;
        let (index, _) = server
            .change_membership(ConfChange::AddLearner(id))
            .await
            .map_err(|error| membership_status(&error))?;
        tracing::info!(
            id = id.0,
            raft = %raft_address,
            voter = !request.get_ref().is_learner,
            "member added as a learner; start it with `raftkv serve --id {} --raft-addr {} \
             --join <a member's HTTP address>`: it promotes itself to voter once caught up",
            id.0,
            raft_address
        );
        let members = self.members_after(index.0).await?;
        let member = members
            .iter()
            .find(|member| member.id == id.0)
            .cloned()
            .unwrap_or_else(|| Member {
                id: id.0,
                name: String::new(),
                peer_ur_ls: vec![self.peer_url(address)],
                client_ur_ls: Vec::new(),
                is_learner: true,
            });
        Ok(Response::new(MemberAddResponse {
            header: Some(self.cluster_header()),
            member: Some(member),
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        if let Some(channel) = self.leader_channel(&request).await? {
            let answer = ClusterClient::new(channel)
                .member_remove(self.forwarded(request))
                .await;
            return self.relay(answer);
        }
        let id = NodeId(request.get_ref().id);
        let members = self.change(ConfChange::Remove(id)).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: Some(self.cluster_header()),
            members,
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        let address = peer_address(&request.get_ref().peer_ur_ls)?;
        if let Some(channel) = self.leader_channel(&request).await? {
            let answer = ClusterClient::new(channel)
                .member_update(self.forwarded(request))
                .await;
            return self.relay(answer);
        }
        let id = NodeId(request.get_ref().id);
        let server = self.server();
        let configuration = self.configuration().await?;
        if !configuration.members().any(|member| member == id) {
            return Err(error::MEMBER_NOT_FOUND.status());
        }
        let taken = configuration
            .members()
            .any(|member| member != id && server.raft_address_of(member) == Some(address));
        if taken {
            return Err(error::PEER_URL_EXIST.status());
        }
        // The other nodes dial the new address once they apply this (as for a node about to
        // be added); the member itself must be restarted listening there (--raft-addr), as an
        // etcd member is restarted with its new peer URLs.
        let record = Operation::RaftAddress {
            node: id.0,
            raft_address: address.to_string(),
        };
        let written = server
            .write(None, record)
            .await
            .map_err(|error| serve_status(&error))?;
        let members = self.members_after(written.index).await?;
        Ok(Response::new(MemberUpdateResponse {
            header: Some(self.cluster_header()),
            members,
        }))
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if request.get_ref().linearizable {
            self.server()
                .read_barrier(ReadMode::Linearizable)
                .await
                .map_err(|error| serve_status(&error))?;
        }
        let configuration = self.configuration().await?;
        Ok(Response::new(MemberListResponse {
            header: Some(self.cluster_header()),
            members: self.members_of(&configuration),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        if let Some(channel) = self.leader_channel(&request).await? {
            let answer = ClusterClient::new(channel)
                .member_promote(self.forwarded(request))
                .await;
            return self.relay(answer);
        }
        let id = NodeId(request.get_ref().id);
        // The core lets a learner within a few entries of the leader's log be promoted; a
        // young log is that short even for a learner that never answered. etcd counts a
        // learner in sync only once the leader heard from it, and so does raftkv here: a
        // voter that never ran would weaken the quorum from the start.
        let status = self
            .server()
            .node()
            .status()
            .await
            .map_err(|error| serve_status(&error.into()))?;
        let never_heard = status
            .peers
            .iter()
            .any(|peer| peer.id == id && peer.learner && peer.match_index.0 == 0);
        if never_heard {
            return Err(error::LEARNER_NOT_READY.status());
        }
        let members = self.change(ConfChange::Promote(id)).await?;
        Ok(Response::new(MemberPromoteResponse {
            header: Some(self.cluster_header()),
            members,
        }))
    }
}

impl EtcdApi {
    /// The header of a membership answer: etcd's carries no revision there (0), since the
    /// membership is not part of the key-value store.
    fn cluster_header(&self) -> ResponseHeader {
        self.header_at(0)
    }

    /// The configuration as this node knows it (the latest it appended).
    async fn configuration(&self) -> Result<Configuration, Status> {
        let status = self
            .server()
            .node()
            .status()
            .await
            .map_err(|error| serve_status(&error.into()))?;
        Ok(status.configuration)
    }

    /// Makes `change` on this node (the leader), then lists the members once it is applied.
    async fn change(&self, change: ConfChange) -> Result<Vec<Member>, Status> {
        let (index, _) = self
            .server()
            .change_membership(change)
            .await
            .map_err(|error| membership_status(&error))?;
        self.members_after(index.0).await
    }

    /// The members once this node applied the entry at `index` (or the request timeout
    /// passed: the change is in the log either way, and the list shows how far it got).
    async fn members_after(&self, index: u64) -> Result<Vec<Member>, Status> {
        let server = self.server();
        let deadline = tokio::time::Instant::now() + server.config().request_timeout;
        while server.state().applied_index() < index && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(server.config().tick.min(Duration::from_millis(20))).await;
        }
        let configuration = self.configuration().await?;
        Ok(self.members_of(&configuration))
    }

    /// The members of `configuration` as etcd describes them: its voters (those of the
    /// configuration being moved to, while it is joint: a member being removed is gone from
    /// etcd's list once its removal applied) and its learners.
    fn members_of(&self, configuration: &Configuration) -> Vec<Member> {
        let server = self.server();
        let https = server.tls().https();
        let client_scheme = if https { "https" } else { "http" };
        configuration
            .voters
            .iter()
            .chain(&configuration.learners)
            .copied()
            .map(|id| {
                // A member that never announced itself has not started, as far as the
                // cluster knows: etcd leaves the name and client URLs of such a one empty.
                let started = server.http_address_of(id).is_some();
                let client_urls = server
                    .grpc_address_of(id)
                    .filter(|_| started)
                    .map(|address| format!("{client_scheme}://{address}"))
                    .into_iter()
                    .collect();
                Member {
                    id: id.0,
                    name: if started {
                        id.0.to_string()
                    } else {
                        String::new()
                    },
                    peer_ur_ls: server
                        .raft_address_of(id)
                        .map(|address| self.peer_url(address))
                        .into_iter()
                        .collect(),
                    client_ur_ls: client_urls,
                    is_learner: configuration.learners.contains(&id),
                }
            })
            .collect()
    }

    /// The peer URL of a Raft address: `https` when the transport uses mutual TLS.
    fn peer_url(&self, address: SocketAddr) -> String {
        let scheme = if self.server().tls().peer().is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{address}")
    }
}

/// The Raft address of a member given as etcd peer URLs: exactly one `http://` or `https://`
/// URL whose host is an IP address (raftkv dials members at socket addresses).
fn peer_address(peer_urls: &[String]) -> Result<SocketAddr, Status> {
    let [url] = peer_urls else {
        return Err(Status::invalid_argument(format!(
            "raftkv: a member has exactly one peer URL (its Raft address), {} given",
            peer_urls.len()
        )));
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or(error::MEMBER_BAD_URLS)?;
    rest.trim_end_matches('/')
        .parse()
        .map_err(|_| error::MEMBER_BAD_URLS.status())
}

/// The id etcd would pick for a new member, in raftkv's numbering: one past every id in use
/// (members, and nodes whose Raft address was recorded, which may be about to join).
fn next_unused_id(configuration: &Configuration, server: &crate::server::KvServer) -> NodeId {
    let recorded = server.state().raft_addresses().keys().copied().max();
    let highest = configuration
        .members()
        .map(|member| member.0)
        .chain(recorded)
        .chain(server.config().peers.keys().map(|peer| peer.0))
        .max()
        .unwrap_or(0);
    NodeId(highest.saturating_add(1))
}

/// The status of a refused membership change, as etcd answers the same refusal.
fn membership_status(error: &ServeError) -> Status {
    match error {
        ServeError::Membership(ConfChangeError::NotMember(_)) => error::MEMBER_NOT_FOUND.status(),
        ServeError::Membership(ConfChangeError::AlreadyVoter(_)) => {
            error::MEMBER_NOT_LEARNER.status()
        }
        ServeError::Membership(ConfChangeError::NotCaughtUp { .. }) => {
            error::LEARNER_NOT_READY.status()
        }
        ServeError::Membership(ConfChangeError::TooFewActiveVoters { .. }) => {
            error::MEMBER_NOT_ENOUGH_STARTED.status()
        }
        ServeError::Membership(ConfChangeError::InvalidNode) => error::MEMBER_NOT_FOUND.status(),
        other => serve_status(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_url_is_one_http_or_https_url_of_an_ip_address() {
        let address = |urls: &[&str]| {
            peer_address(&urls.iter().map(|url| url.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(
            address(&["http://127.0.0.1:2380"]).ok(),
            Some("127.0.0.1:2380".parse().expect("an address"))
        );
        assert_eq!(
            address(&["https://[::1]:2380/"]).ok(),
            Some("[::1]:2380".parse().expect("an address"))
        );
        for bad in [
            "127.0.0.1:2380",
            "http://etcd-1:2380",
            "unix://x",
            "http://1.2.3.4",
        ] {
            let status = address(&[bad]).expect_err(bad);
            assert_eq!(status.message(), error::MEMBER_BAD_URLS.message, "{bad}");
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
        }
        let status = address(&[]).expect_err("none");
        assert!(status.message().starts_with("raftkv:"), "{status:?}");
        let two = address(&["http://127.0.0.1:1", "http://127.0.0.1:2"]).expect_err("two");
        assert!(two.message().starts_with("raftkv:"), "{two:?}");
    }
}
