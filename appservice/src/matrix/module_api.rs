//! # `POST /_assisto/module/v1/check`
//!
//! The Synapse module asks whether an action may go ahead (create a room, invite, join,
//! send). Authenticated with `appservice.module_token` (Bearer, constant-time). The rules'
//! checker (`features::rooms::checks`) answers first; what it allows in a live chat the
//! live-chat desk decides as well (`features::live`): a counsellor's join of a queued
//! chat is their taking it, in one atomic step, so of many joining at once exactly one gets
//! in. See `synapse_module/` for the asker.

use std::sync::Arc;

use axum::{extract::State, http::HeaderMap, Json};

use crate::app::services::Services;
use crate::features::rooms::checks::{CheckRequest, CheckResponse, RoomState};
use crate::web::error::MatrixError;
use assisto_core::rules::Rule;

/// Decides one question.
pub(crate) async fn check_route(
    State(state): State<Arc<Services>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<CheckResponse>, MatrixError> {
    crate::web::auth::require_bearer(&headers, state.web.module_token_digest.as_ref())?;
    let req: CheckRequest = crate::web::error::json_body(&body, crate::web::error::Lang::En)?;
    let resp = state.checker.check(&req).await?;
    if !resp.allow {
        return Ok(Json(resp));
    }
    let invited = |room: &RoomState, user: &str| room.members.invite.iter().any(|m| m == user);
    let gate = match &req {
        CheckRequest::Join { user, room_id, room } => {
            state.live.gate_join(room_id, user, invited(room, user)).await?
        }
        CheckRequest::Member { user, target, membership, room_id, room }
            if user == target && membership.as_deref() == Some("join") =>
        {
            if room.members.join.iter().any(|m| m == user) {
                None // a profile change
            } else {
                state.live.gate_join(room_id, user, invited(room, user)).await?
            }
        }
        CheckRequest::Member { user, target, membership, room_id, .. }
            if membership.as_deref() == Some("invite") =>
        {
            state.live.gate_invite(room_id, user, target).await?
        }
        CheckRequest::Invite { user, target, room_id, .. } => {
            state.live.gate_invite(room_id, user, target).await?
        }
        _ => None,
    };
    Ok(Json(match gate {
        Some(Err(e)) => {
            tracing::info!(rule = Rule::LiveChatOwner.as_str(), "live-chat desk refused an action");
            CheckResponse::refused(Rule::LiveChatOwner, e.to_string())
        }
        _ => resp,
    }))
}
