// Starts the .moe language server: `node dist/editor/server/main.js --stdio` (or --node-ipc,
// --socket=<port>; createConnection reads the transport from the command line).
import { createConnection, ProposedFeatures } from 'vscode-languageserver/node';
import { startMoeServer } from './server.js';

const connection = createConnection(ProposedFeatures.all);
startMoeServer(connection);
connection.listen();
