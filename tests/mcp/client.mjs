// An MCP client for the tests: connects to the URL in argv[2] over streamable
// HTTP with the official SDK, lists the tools, then makes the calls read as a JSON
// list of {name, arguments} from stdin, and prints {server, tools, results} as JSON.
// MCP_AUTHORIZATION is sent as the Authorization header, MCP_DEVICE as X-Device-Id.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = new URL(process.argv[2]);
const headers = {};
if (process.env.MCP_AUTHORIZATION) {
  headers.Authorization = process.env.MCP_AUTHORIZATION;
}
if (process.env.MCP_DEVICE) {
  headers["X-Device-Id"] = process.env.MCP_DEVICE;
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
const calls = input.trim() ? JSON.parse(input) : [];

const client = new Client({ name: "whatsapp-api-tests", version: "1.0.0" });
const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers } });
await client.connect(transport);
const { tools } = await client.listTools();
const results = [];
for (const call of calls) {
  try {
    results.push(await client.callTool(call));
  } catch (e) {
    results.push({ protocolError: String(e && e.message ? e.message : e) });
  }
}
process.stdout.write(
  JSON.stringify({ server: client.getServerVersion(), tools, results }) + "\n",
);
await client.close();
