//! Integration tests against a real Synapse. One binary; a module per area.

mod appservice_api;
mod attacks;
mod cli;
mod client_file;
mod contract;
mod counters;
mod deletion;
mod delivery;
mod documents;
mod embed;
mod embed_browser;
mod export;
mod groups;
mod homeserver_client;
mod live;
mod rooms_flow;
mod rules;
mod search;
mod statistics;
mod tools;
mod widget_browser;
