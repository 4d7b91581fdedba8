# The two set-up commands of the README. Everything they need is installed by the
# project's own scripts (scripts/), from PyPI, crates.io and Debian's packages.
.PHONY: run test bench bench-embed bench-live bench-backlog bench-export bench-search lint

## Start Synapse + assisto locally on embedded defaults (SQLite), with demo data.
run:
	bash scripts/run.sh

## Install what the tests need and run every test against a real Synapse (SQLite, then PostgreSQL).
test:
	bash scripts/test.sh

## Benchmarks (not part of `make test`); results go to docs/benchmarks.md.
bench:
	bash scripts/bench.sh

## The web embed's benchmark (connections held, memory per connection, added latency).
bench-embed:
	bash scripts/bench-embed.sh

## Memory while working off a long backlog (20,000 and 200,000 events).
bench-backlog:
	bash scripts/bench-backlog.sh

## The chat export's benchmark (CSV and PDF of a chat with 10,000 messages).
bench-export:
	bash scripts/bench-export.sh

## The search's benchmark (1,000,000 messages indexed and queried; the same queries against Synapse).
bench-search:
	bash scripts/bench-search.sh

## The live-chat desk's benchmark (1,000 visitors within a minute, 20 counsellors).
bench-live:
	bash scripts/bench-live.sh

## Formatting and lints.
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
