// Minimal application service built on the npm `matrix-appservice` package, for assisto-bench.
//
// It is what someone would write with matrix-appservice instead of assisto: the library's
// `AppService` serves the homeserver's `PUT /_matrix/app/v1/transactions/:txnId` itself (its
// own route, token check and duplicate check), and one listener of its "event" emitter
// counts the `m.room.message` events, the way a bot would look at each message for a command.
// Nothing is stored: a transaction is acknowledged right after its events were emitted.
//
// `GET /processed` (added to the library's Express app) answers the number of events the
// listener has handled, as a plain number, so that the bench can tell when all were processed.
//
// Usage: node server.js --port PORT --hs-token TOKEN [--host 127.0.0.1]
"use strict";

const { AppService } = require("matrix-appservice");

function parseArgs(argv) {
    const args = { host: "127.0.0.1", port: undefined, hsToken: undefined };
    for (let i = 0; i < argv.length; i++) {
        const value = argv[i + 1];
        switch (argv[i]) {
            case "--host": args.host = value; i++; break;
            case "--port": args.port = Number(value); i++; break;
            case "--hs-token": args.hsToken = value; i++; break;
            default:
                console.error(`unknown argument: ${argv[i]}`);
                process.exit(2);
        }
    }
    if (!Number.isInteger(args.port) || args.port <= 0 || args.port > 65535 || !args.hsToken) {
        console.error("usage: node server.js --port PORT --hs-token TOKEN [--host 127.0.0.1]");
        process.exit(2);
    }
    return args;
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const as = new AppService({ homeserverToken: args.hsToken });
    let processed = 0;

    as.on("event", (event) => {
        if (event.type === "m.room.message") {
            const body = (event.content && typeof event.content.body === "string") ? event.content.body : "";
            // The "handler": a bot would parse commands here; plain messages need nothing.
            void body.startsWith("!assisto");
        }
        processed += 1;
    });

    as.expressApp.get("/processed", (_req, res) => {
        res.type("text/plain").send(String(processed));
    });

    await as.listen(args.port, args.host);
    console.log(`matrix-appservice peer listening on ${args.host}:${args.port}`);
    const stop = () => {
        as.close().finally(() => process.exit(0));
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
