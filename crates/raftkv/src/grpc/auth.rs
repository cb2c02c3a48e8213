//! The Auth service of the etcd v3 API: raftkv's bearer tokens as etcd's auth tokens.
//!
//! ```text
//!  Authenticate(name, password)  password = one of the node's tokens (--auth-tokens) ─► that
//!                                token, as the etcd token clients send in `token` metadata
//!                                (`etcdctl --user NAME:TOKEN`; the name is not checked)
//!  AuthStatus                    enabled = the node requires tokens
//!  users, roles, enable/disable  Unimplemented: tokens and their roles are the file's
//! ```
//!
//! The check on every call is [`super::access`].

use raftkv_etcd_api::etcdserverpb::*;
use tonic::{Request, Response, Status};

use super::error::{self, unimplemented};
use super::EtcdApi;

/// Why etcd's user and role administration is not served.
const MANAGED_BY_FILE: &str = "raftkv's tokens and their roles are managed in the file given \
                               with --auth-tokens (read when the node starts); authenticate \
                               with a token of it as the password";

#[tonic::async_trait]
impl auth_server::Auth for EtcdApi {
    async fn auth_enable(
        &self,
        _request: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        Err(unimplemented("AuthEnable", MANAGED_BY_FILE))
    }

    async fn auth_disable(
        &self,
        _request: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        Err(unimplemented("AuthDisable", MANAGED_BY_FILE))
    }

    async fn auth_status(
        &self,
        _request: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        Ok(Response::new(AuthStatusResponse {
            header: Some(self.header()),
            enabled: self.policy().is_some(),
            // The token file is read once, at start: its rights never change while it runs.
            auth_revision: 0,
        }))
    }

    async fn authenticate(
        &self,
        request: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let Some(policy) = self.policy() else {
            return Err(error::AUTH_NOT_ENABLED.status());
        };
        let password = request.into_inner().password;
        if policy.role_of(password.as_bytes()).is_none() {
            return Err(error::AUTH_FAILED.status());
        }
        Ok(Response::new(AuthenticateResponse {
            header: Some(self.header()),
            token: password,
        }))
    }

    async fn user_add(
        &self,
        _request: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        Err(unimplemented("UserAdd", MANAGED_BY_FILE))
    }

    async fn user_get(
        &self,
        _request: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        Err(unimplemented("UserGet", MANAGED_BY_FILE))
    }

    async fn user_list(
        &self,
        _request: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        Err(unimplemented("UserList", MANAGED_BY_FILE))
    }

    async fn user_delete(
        &self,
        _request: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        Err(unimplemented("UserDelete", MANAGED_BY_FILE))
    }

    async fn user_change_password(
        &self,
        _request: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        Err(unimplemented("UserChangePassword", MANAGED_BY_FILE))
    }

    async fn user_grant_role(
        &self,
        _request: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        Err(unimplemented("UserGrantRole", MANAGED_BY_FILE))
    }

    async fn user_revoke_role(
        &self,
        _request: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        Err(unimplemented("UserRevokeRole", MANAGED_BY_FILE))
    }

    async fn role_add(
        &self,
        _request: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        Err(unimplemented("RoleAdd", MANAGED_BY_FILE))
    }

    async fn role_get(
        &self,
        _request: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        Err(unimplemented("RoleGet", MANAGED_BY_FILE))
    }

    async fn role_list(
        &self,
        _request: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        Err(unimplemented("RoleList", MANAGED_BY_FILE))
    }

    async fn role_delete(
        &self,
        _request: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        Err(unimplemented("RoleDelete", MANAGED_BY_FILE))
    }

    async fn role_grant_permission(
        &self,
        _request: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        Err(unimplemented("RoleGrantPermission", MANAGED_BY_FILE))
    }

    async fn role_revoke_permission(
        &self,
        _request: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        Err(unimplemented("RoleRevokePermission", MANAGED_BY_FILE))
    }
}
