"""The peer protocol over HTTP: handshake, headers presync, block download, announce-then-fetch relay, bans.

The protocol is in docs/protocol.md ("Peers"); the threat model in docs/security.md ("Peers"). In short:

- A peer is `host:port` (addrman.PeerAddress); the node calls only the protocol's fixed paths on it, never
  follows a redirect, and shows nothing free-form a peer answered (`client`).
- Who sent a request is its connection's IP (addrman.identity); ban score and bans go there (Bitcoin:
  Misbehaving, BanMan). A peer on our own IP (this machine) is scored by `ip:port` instead (`bans`).
  Misbehaviour is one call with a score and a reason (`PeerTable.misbehaving`); what each message costs is
  decided in this package alone, for requests a peer sends us (`inbound`, which the web layer forwards to) and
  for answers to ours (`sync`, `relay`).
- Work is verified before it is trusted (Bitcoin: headers presync, PR 25717): a hello's height and chain work
  are hints; headers are checked by the block index's own rules (`core.headerview`) and their work summed before
  any block is downloaded, and only blocks we lack are fetched, only for a header chain with more work than
  ours (`sync`).
- Each peer has its own bounded send queue and sender thread (Bitcoin: per-peer vInventoryToSend), so a slow
  peer delays no one else. Relay announces hashes (`POST /p2p/inv`); the answer names the ones the peer lacks,
  and only those are sent: a block crosses each link once (`relay`). A tx is asked of one announcer at a time,
  the next one if it does not deliver (`txrequest`, Bitcoin's TxRequestTracker).
- A failure talking to a peer is that peer's failure (backoff, maybe ban score), never a thread's: every loop
  catches per peer, per item (`manager`, `relay`).

Modules, lowest first: `client` (outgoing calls, errors, the download in a thread), `bans` (identity, scores,
what a bad block or tx costs), `table` (per-peer state, the table, misbehaviour, eviction, backoff), `txrequest`
(whom to ask for a tx, pure), `relay`, `sync`, `manager` (composes them: the sync thread, start/stop, peers.json),
`inbound` (requests from peers).
"""
