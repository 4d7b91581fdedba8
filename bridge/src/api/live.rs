//! Live updates: the WebSocket (`/ws`, authenticated by its first frame) and the long-poll
//! fallback (`/events`), both fed by the hub and caught up from the history.

use std::{collections::HashSet, sync::Arc, time::Duration};

use axum::{
    extract::{
        ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade},
        Query, State,
    },
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::{cors::same_origin, limits::Limit, query, session_of, ApiError, ApiResult, Bridge};
use crate::{
    core::{CoreError, Message},
    hub::Frame,
};

/// A frame as the browser gets it.
fn frame_json(f: &Value) -> String {
    f.to_string()
}

fn message_frame(m: &Message) -> Value {
    json!({ "type": "message", "message": m })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    after: Option<String>,
    timeout: Option<u64>,
}

/// # `GET /events`: long polling, for where WebSockets do not get through.
pub(super) async fn events_route(
    State(b): State<Arc<Bridge>>,
    h: HeaderMap,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let s = session_of(&b, &h).await?;
    let q = query(q)?;
    let mut rx = b.hub.subscribe(&s.conversation);
    let mut events: Vec<Value> =
        b.core.since(&s, q.after.as_deref()).await?.iter().map(message_frame).collect();
    if events.is_empty() {
        let wait = Duration::from_secs(q.timeout.unwrap_or(25).min(25));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => break,
                Ok(Ok(Frame::Message(m))) => events.push(message_frame(&m)),
                Ok(Ok(Frame::Redacted(id))) => events.push(json!({ "type": "redacted", "id": id })),
                Ok(Ok(Frame::StateChanged)) => {
                    events.push(json!({ "type": "state", "state": b.core.state(&s).await? }))
                }
                Ok(Err(RecvError::Lagged(_))) => {
                    events.extend(b.core.since(&s, q.after.as_deref()).await?.iter().map(message_frame));
                }
                Ok(Err(RecvError::Closed)) => break,
            }
            if !events.is_empty() {
                // Gather what arrives right after (a burst) into the same answer.
                while let Ok(Ok(f)) = tokio::time::timeout(Duration::from_millis(20), rx.recv()).await {
                    match f {
                        Frame::Message(m) => events.push(message_frame(&m)),
                        Frame::Redacted(id) => events.push(json!({ "type": "redacted", "id": id })),
                        Frame::StateChanged => {}
                    }
                }
                break;
            }
        }
    }
    let state = b.core.state(&s).await?;
    Ok(Json(json!({ "events": events, "state": state })).into_response())
}

/// # `GET /ws`
pub(super) async fn ws_route(State(b): State<Arc<Bridge>>, h: HeaderMap, ws: WebSocketUpgrade) -> Response {
    if let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !same_origin(origin, host) && !b.core.origin_allowed(origin).await {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "M_FORBIDDEN",
                "Diese Website darf den Chat nicht einbinden.",
            )
            .into_response();
        }
    }
    // Small buffers: thousands of mostly idle connections (frames are small; the buffers
    // grow for a large one).
    let origin = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let site = origin.filter(|o| !same_origin(o, host));
    ws.max_message_size(64 * 1024)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| serve_socket(b, socket, site))
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Incoming {
    Auth { session: String, after: Option<String> },
    Typing { typing: bool },
    Ping,
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let _ = socket.send(WsMessage::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

async fn send_json(socket: &mut WebSocket, v: &Value) -> bool {
    socket.send(WsMessage::Text(frame_json(v).into())).await.is_ok()
}

/// `site`: the browser's origin when it is not the bridge's own.
async fn serve_socket(b: Arc<Bridge>, mut socket: WebSocket, site: Option<String>) {
    // The first frame authenticates (a token in the URL would end up in access logs).
    let first = tokio::time::timeout(Duration::from_secs(10), socket.recv()).await;
    let Ok(Some(Ok(WsMessage::Text(text)))) = first else {
        return close(socket, 4001, "auth expected").await;
    };
    let Ok(Incoming::Auth { session, after }) = serde_json::from_str::<Incoming>(&text) else {
        return close(socket, 4001, "auth expected").await;
    };
    let s = match b.core.session(&session).await {
        Ok(s) => s,
        Err(CoreError::Blocked(_)) => return close(socket, 4003, "blocked").await,
        Err(_) => return close(socket, 4001, "invalid session").await,
    };
    if let Some(origin) = &site {
        if !b.core.origin_allowed_for(&s.institution, origin).await {
            return close(socket, 4001, "origin not allowed for this institution").await;
        }
    }
    // Subscribe before catching up, so nothing falls between the two.
    let mut rx = b.hub.subscribe(&s.conversation);
    let Ok(state) = b.core.state(&s).await else { return close(socket, 1011, "try again").await };
    if !send_json(&mut socket, &json!({ "type": "ready", "state": state })).await {
        return;
    }
    let mut sent: HashSet<String> = HashSet::new();
    let mut last = after;
    match b.core.since(&s, last.as_deref()).await {
        Ok(missed) => {
            for m in missed {
                sent.insert(m.id.clone());
                last = Some(m.id.clone());
                if !send_json(&mut socket, &message_frame(&m)).await {
                    return;
                }
            }
        }
        Err(_) => return close(socket, 1011, "try again").await,
    }
    let mut ping = tokio::time::interval(Duration::from_secs(30));
    ping.tick().await;
    loop {
        tokio::select! {
            frame = rx.recv() => {
                let out = match frame {
                    Ok(Frame::Message(m)) => {
                        if !sent.insert(m.id.clone()) {
                            continue;
                        }
                        last = Some(m.id.clone());
                        message_frame(&m)
                    }
                    Ok(Frame::Redacted(id)) => json!({ "type": "redacted", "id": id }),
                    Ok(Frame::StateChanged) => match b.core.state(&s).await {
                        Ok(state) => {
                            let blocked = state.blocked;
                            let v = json!({ "type": "state", "state": state });
                            if !send_json(&mut socket, &v).await {
                                return;
                            }
                            if blocked {
                                return close(socket, 4003, "blocked").await;
                            }
                            continue;
                        }
                        Err(_) => continue,
                    },
                    Err(RecvError::Lagged(_)) => {
                        // Fell behind: catch up from history.
                        let Ok(missed) = b.core.since(&s, last.as_deref()).await else { continue };
                        for m in missed {
                            if sent.insert(m.id.clone()) {
                                last = Some(m.id.clone());
                                if !send_json(&mut socket, &message_frame(&m)).await {
                                    return;
                                }
                            }
                        }
                        continue;
                    }
                    Err(RecvError::Closed) => return close(socket, 1012, "restart").await,
                };
                if !send_json(&mut socket, &out).await {
                    return;
                }
            }
            incoming = socket.recv() => {
                match incoming {
                    Some(Ok(WsMessage::Text(t))) => match serde_json::from_str::<Incoming>(&t) {
                        Ok(Incoming::Typing { typing })
                            if b.limits.check(Limit::Call, &s.id).is_ok() =>
                        {
                            let _ = b.core.typing(&s, typing).await;
                        }
                        Ok(Incoming::Ping) if !send_json(&mut socket, &json!({ "type": "pong" })).await => return,
                        _ => {}
                    },
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                }
            }
            _ = ping.tick() => {
                if socket.send(WsMessage::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}
