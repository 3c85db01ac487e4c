// A real SMPP 3.4 SMSC for the tests, on loopback (the npm `smpp` package, installed into
// build/npm by `make deps-test`). It checks binds, answers submit_sm with a message ID, sends a
// delivery receipt (deliver_sm) on the transceiver or receiver binds of that system_id, and
// appends what it saw, one JSON object a line, to the records file. Lines on stdin steer it:
// "drop" cuts every connection, "unbind" ends every bind the SMPP way, "silent" stops it
// answering anything, "refuse STATUS" answers submit_sm with that command_status.
//
// node tests/smsc.js PORT SYSTEM_ID PASSWORD RECORDS [KEY CERT]   (KEY CERT: SMPP over TLS)
'use strict';

const fs = require('fs');
const readline = require('readline');
const smpp = require('smpp');

const [port, systemId, password, records, key, cert] = process.argv.slice(2);
const sessions = new Set();
let counter = 0;
let silent = false;
let refuse = 0;

function record(entry) {
  fs.appendFileSync(records, JSON.stringify(entry) + '\n');
}

function hex(value) {
  return Buffer.isBuffer(value) ? value.toString('hex') : null;
}

function submitted(pdu) {
  const sm = pdu.short_message || {};
  const message = sm.message !== undefined ? sm.message : sm;
  return {
    event: 'submit_sm',
    source_addr: pdu.source_addr,
    source_addr_ton: pdu.source_addr_ton,
    source_addr_npi: pdu.source_addr_npi,
    destination_addr: pdu.destination_addr,
    dest_addr_ton: pdu.dest_addr_ton,
    dest_addr_npi: pdu.dest_addr_npi,
    data_coding: pdu.data_coding,
    esm_class: pdu.esm_class,
    registered_delivery: pdu.registered_delivery,
    udh: (sm.udh || []).map((u) => Buffer.from(u).toString('hex')),
    text: typeof message === 'string' ? message : null,
    raw: hex(message),
  };
}

function receipt(id, submittedAt, from) {
  const stamp = (d) => d.toISOString().replace(/[-:T]/g, '').slice(2, 12);
  const text = `id:${id} sub:001 dlvrd:001 submit date:${stamp(submittedAt)} ` +
    `done date:${stamp(new Date())} stat:DELIVRD err:000 text:`;
  // The bind the message came on if it takes receipts, else another bind of the system_id.
  for (const session of [from, ...sessions]) {
    if (sessions.has(session) && (session.bound === 'transceiver' || session.bound === 'receiver')) {
      session.send(new smpp.PDU('deliver_sm', {
        esm_class: 0x04,
        short_message: text,
        receipted_message_id: id,
        message_state: 2,
      }));
      record({ event: 'receipt_sent', message_id: id });
      return;
    }
  }
  record({ event: 'receipt_waiting', message_id: id });
}

function onSession(session) {
  sessions.add(session);
  session.on('close', () => sessions.delete(session));
  session.on('error', () => sessions.delete(session));
  for (const kind of ['transmitter', 'transceiver', 'receiver']) {
    session.on('bind_' + kind, (pdu) => {
      if (silent) return;
      let status = 0;
      if (pdu.system_id !== systemId) status = smpp.ESME_RINVSYSID;
      else if (pdu.password !== password) status = smpp.ESME_RINVPASWD;
      record({ event: 'bind_' + kind, system_id: pdu.system_id, system_type: pdu.system_type,
        interface_version: pdu.interface_version, status });
      session.send(pdu.response({ command_status: status, system_id: 'test-smsc' }));
      if (status) session.close(); else session.bound = kind;
    });
  }
  session.on('submit_sm', (pdu) => {
    if (silent) return;
    if (refuse) {
      record({ ...submitted(pdu), status: refuse });
      session.send(pdu.response({ command_status: refuse }));
      return;
    }
    counter += 1;
    const id = 'msg' + counter;
    record({ ...submitted(pdu), message_id: id, bind: session.bound });
    session.send(pdu.response({ message_id: id }));
    if (pdu.registered_delivery & 0x01) {
      const at = new Date();
      setTimeout(() => receipt(id, at, session), 50);
    }
  });
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => {
    record({ event: 'unbind' });
    session.send(pdu.response());
    session.close();
  });
}

const options = key ? { key: fs.readFileSync(key), cert: fs.readFileSync(cert) } : {};
const server = smpp.createServer(options, onSession);
server.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`listening ${port}\n`);
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [command, argument] = line.trim().split(/\s+/);
  if (command === 'drop') {
    for (const session of sessions) session.destroy();
    record({ event: 'dropped' });
  } else if (command === 'unbind') {
    for (const session of sessions) session.send(new smpp.PDU('unbind'));
    record({ event: 'unbind_sent' });
  } else if (command === 'silent') {
    silent = true;
  } else if (command === 'refuse') {
    refuse = Number(argument);
  }
  process.stdout.write(`ok ${command}\n`);
});
process.stdin.on('end', () => process.exit(0));
