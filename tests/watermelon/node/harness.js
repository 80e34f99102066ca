'use strict'
// A headless WatermelonDB "device farm" the Python tests drive, one JSON command per stdin line and one JSON
// answer per stdout line ({id, ok, result} or {id, ok: false, error}). Each device is a real WatermelonDB
// Database on the LokiJS adapter (in memory; an app upgrade keeps its data in the same Loki memory store), and
// syncs with the real `synchronize()` whose pullChanges / pushChanges only call Tuskbase's URLs.
//
// Commands (all take `device` except `ping`):
//   open {url, apikey, token, schemaVersion, members?}  create or reopen (app upgrade) the device's database;
//                                             members: the app also holds list_members (once the server gives
//                                             it a one-column surrogate key, as the README's recipe does)
//   token {token}                             the user's access token (sign-in, refresh)
//   create {table, fields} -> {id}            local writes, as an app would make them offline
//   update {table, recordId, fields}
//   delete {table, recordId}                  markAsDeleted (synced as a delete)
//   sync {limit?, pauseBeforePush?}           synchronize(), looped while the server says has_more;
//                                             with pauseBeforePush, answers {paused: true} right before the
//                                             push and waits for `resume`, whose answer is the sync's outcome
//   resume {}
//   records {table} -> [raw]                  local records, including _status and _changed
//   unsynced {} -> bool                       hasUnsyncedChanges()
//   live {}                                   hold a /sync/v1/live WebSocket; each poke runs a sync (queued
//                                             like any command of the device), as an app would
//   liveStatus {} -> {ready, pokes, syncs, errors}
//   unlive {}
const readline = require('readline')
const crypto = require('crypto')

const { Database, Model, appSchema, tableSchema } = require('@nozbe/watermelondb')
const LokiJSAdapter = require('@nozbe/watermelondb/adapters/lokijs').default
const { schemaMigrations, addColumns } = require('@nozbe/watermelondb/Schema/migrations')
const { synchronize, hasUnsyncedChanges } = require('@nozbe/watermelondb/sync')
const { getLastPulledAt } = require('@nozbe/watermelondb/sync/impl')
const { setGenerator } = require('@nozbe/watermelondb/utils/common/randomId')
const { LokiMemoryAdapter } = require('lokijs')
const logger = require('@nozbe/watermelondb/utils/common/logger').default
const WebSocket = require('ws')

// Postgres keys are uuids: records created offline get one too.
setGenerator(() => crypto.randomUUID())
// Sync warnings go to stderr (stdout is the answer channel).
logger.log = (...args) => console.error('[wmelon]', ...args)
logger.warn = (...args) => console.error('[wmelon warn]', ...args)
logger.error = (...args) => console.error('[wmelon error]', ...args)

// The example todo app (examples/todo). Version 1 has no `position` on todos; version 2 adds it, so an
// upgraded device asks the server for that column through `migration`. list_members has a composite key, which
// WatermelonDB cannot hold (one string `id` per record): the app syncs it only once the server gives it a
// surrogate key (`open` with members: true).
const listsTable = tableSchema({
  name: 'lists',
  columns: [
    { name: 'owner_id', type: 'string' },
    { name: 'title', type: 'string' },
    { name: 'created_at', type: 'number' },
    { name: 'updated_at', type: 'number' },
  ],
})
const todoColumns = [
  { name: 'list_id', type: 'string', isIndexed: true },
  { name: 'title', type: 'string' },
  { name: 'done', type: 'boolean' },
  { name: 'created_by', type: 'string', isOptional: true },
  { name: 'created_at', type: 'number' },
  { name: 'updated_at', type: 'number' },
]
const positionColumn = { name: 'position', type: 'number' }
const membersTable = tableSchema({
  name: 'list_members',
  columns: [
    { name: 'list_id', type: 'string', isIndexed: true },
    { name: 'user_id', type: 'string' },
    { name: 'role', type: 'string' },
    { name: 'added_at', type: 'number' },
  ],
})

function schemaFor(version, members) {
  const todos = version >= 2 ? [...todoColumns, positionColumn] : todoColumns
  const tables = [listsTable, tableSchema({ name: 'todos', columns: todos })]
  return appSchema({ version, tables: members ? [...tables, membersTable] : tables })
}

function migrationsFor(version) {
  const all = [{ toVersion: 2, steps: [addColumns({ table: 'todos', columns: [positionColumn] })] }]
  return schemaMigrations({ migrations: all.filter((migration) => migration.toVersion <= version) })
}

// What the @date('created_at') / @date('updated_at') decorators would define: with them WatermelonDB stamps
// created_at on create and updated_at on every update, as an app's models do.
class Stamped extends Model {
  get createdAt() {
    return this._getRaw('created_at')
  }

  get updatedAt() {
    return this._getRaw('updated_at')
  }
}
class List extends Stamped {
  static table = 'lists'
}
class Todo extends Stamped {
  static table = 'todos'
  static associations = { lists: { type: 'belongs_to', key: 'list_id' } }
}
class Member extends Model {
  static table = 'list_members'
}

const devices = new Map()

async function open(name, { url, apikey, token, schemaVersion = 1, members = false }) {
  const previous = devices.get(name)
  // The Loki memory store outlives the Database object: reopening at a higher version is an app upgrade.
  const store = previous ? previous.store : new LokiMemoryAdapter()
  if (previous) {
    await flush(previous)
  }
  const adapter = new LokiJSAdapter({
    schema: schemaFor(schemaVersion, members),
    migrations: migrationsFor(schemaVersion),
    useWebWorker: false,
    useIncrementalIndexedDB: true, // no IndexedDB in Node: the Loki store given below is used
    dbName: `device-${name}`,
    _testLokiAdapter: store,
    extraLokiOptions: { autosave: true, autosaveInterval: 20 },
  })
  const database = new Database({ adapter, modelClasses: members ? [List, Todo, Member] : [List, Todo] })
  const device = { name, store, database, url, apikey, token, pending: null, lastPull: null }
  devices.set(name, device)
  return { schemaVersion }
}

async function flush(device) {
  // Let Loki's autosave write the in-memory store before a new adapter loads it.
  await new Promise((resolve) => setTimeout(resolve, 200))
}

function headers(device) {
  const result = { apikey: device.apikey, 'content-type': 'application/json' }
  if (device.token) {
    result.authorization = `Bearer ${device.token}`
  }
  return result
}

async function call(device, method, query, body) {
  const response = await fetch(`${device.url}/sync/v1/watermelon?${new URLSearchParams(query)}`, {
    method,
    headers: headers(device),
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  if (!response.ok) {
    const error = new Error(`${method} /sync/v1/watermelon answered ${response.status}: ${text}`)
    error.status = response.status
    error.body = text
    throw error
  }
  return JSON.parse(text)
}

async function sync(device, { limit, pauseBeforePush }, answerPaused) {
  const pulls = []
  const pushes = []
  let hasMore = true
  let rounds = 0
  while (hasMore) {
    rounds += 1
    if (rounds > 1000) {
      throw new Error('has_more never ended')
    }
    hasMore = false
    const log = {}
    await synchronize({
      database: device.database,
      migrationsEnabledAtVersion: 1,
      log,
      pullChanges: async ({ lastPulledAt, schemaVersion, migration }) => {
        const query = { schema_version: String(schemaVersion) }
        if (lastPulledAt) {
          query.last_pulled_at = String(lastPulledAt)
        }
        if (migration) {
          query.migration = JSON.stringify(migration)
        }
        if (limit) {
          query.limit = String(limit)
        }
        const result = await call(device, 'GET', query)
        hasMore = Boolean(result.has_more)
        pulls.push({ lastPulledAt: lastPulledAt ?? null, migration: migration ?? null, timestamp: result.timestamp,
          changes: result.changes, has_more: hasMore, strategy: result.experimentalStrategy ?? null })
        const answer = { changes: result.changes, timestamp: result.timestamp }
        if (result.experimentalStrategy) {
          answer.experimentalStrategy = result.experimentalStrategy
        }
        return answer
      },
      pushChanges: async ({ changes, lastPulledAt }) => {
        if (pauseBeforePush) {
          pauseBeforePush = false
          await new Promise((resolve) => {
            device.pending = resolve
            answerPaused()
          })
        }
        pushes.push({ changes, lastPulledAt })
        await call(device, 'POST', { last_pulled_at: String(lastPulledAt) }, { changes, lastPulledAt })
      },
    })
  }
  return { pulls, pushes }
}

function live(device) {
  // Catch up from the device's last pull: its WatermelonDB timestamp leads to its place in the feed.
  return getLastPulledAt(device.database).then((last) => new Promise((resolve, reject) => {
    const params = new URLSearchParams({ apikey: device.apikey, access_token: device.token })
    if (last) {
      params.set('last_pulled_at', String(last))
    }
    const socket = new WebSocket(`${device.url.replace(/^http/, 'ws')}/sync/v1/live?${params}`)
    const status = { ready: null, pokes: 0, syncs: 0, errors: [] }
    device.live = { socket, status }
    socket.on('message', (data) => {
      const message = JSON.parse(String(data))
      if (message.type === 'ready') {
        status.ready = message.seq
        resolve({ ready: message.seq })
      } else if (message.type === 'poke') {
        status.pokes += 1
        enqueue({ device: device.name, op: 'sync' }, () => sync(device, {}, () => {})).then(
          () => { status.syncs += 1 },
          (error) => { status.errors.push(String(error.message || error)) },
        )
      }
    })
    socket.on('error', reject)
  }))
}

async function records(device, table) {
  const all = await device.database.get(table).query().fetch()
  const deleted = await device.database.adapter.getDeletedRecords(table)
  return { records: all.map((record) => ({ ...record._raw })), deleted }
}

async function handle(message, reply) {
  const { op } = message
  if (op === 'ping') {
    return 'pong'
  }
  const device = devices.get(message.device)
  if (op === 'open') {
    return open(message.device, message)
  }
  if (!device) {
    throw new Error(`no device ${message.device}: open it first`)
  }
  switch (op) {
    case 'token':
      device.token = message.token
      return null
    case 'create': {
      let id
      await device.database.write(async () => {
        const record = await device.database.get(message.table).create((raw) => {
          for (const [column, value] of Object.entries(message.fields)) {
            raw._setRaw(column, value)
          }
        })
        id = record.id
      })
      return { id }
    }
    case 'update':
      await device.database.write(async () => {
        const record = await device.database.get(message.table).find(message.recordId)
        await record.update((raw) => {
          for (const [column, value] of Object.entries(message.fields)) {
            raw._setRaw(column, value)
          }
        })
      })
      return null
    case 'delete':
      await device.database.write(async () => {
        const record = await device.database.get(message.table).find(message.recordId)
        await record.markAsDeleted()
      })
      return null
    case 'sync':
      return sync(device, message, () => reply({ paused: true }))
    case 'resume': {
      const resume = device.pending
      if (!resume) {
        throw new Error('no sync is paused')
      }
      device.pending = null
      resume()
      return null
    }
    case 'records':
      return records(device, message.table)
    case 'live':
      return live(device)
    case 'liveStatus':
      return device.live ? { ...device.live.status } : null
    case 'unlive':
      if (device.live) {
        device.live.socket.close()
        device.live = null
      }
      return null
    case 'unsynced':
      return hasUnsyncedChanges({ database: device.database })
    default:
      throw new Error(`unknown op ${op}`)
  }
}

function write(answer) {
  process.stdout.write(JSON.stringify(answer) + '\n')
}

// Commands of one device run one after another; devices run side by side, and `resume` / `ping` jump the
// queue (a paused sync must not block them). Each answer names its command's id. A paused sync answers twice:
// {paused: true} first, then its outcome with `final: true`.
const queues = new Map()

function enqueue(message, run) {
  if (message.op === 'resume' || message.op === 'ping') {
    return run()
  }
  const tail = queues.get(message.device) || Promise.resolve()
  const next = tail.then(run, run)
  queues.set(message.device, next.catch(() => {}))
  return next
}

const lines = readline.createInterface({ input: process.stdin })
lines.on('line', (line) => {
  if (!line.trim()) {
    return
  }
  let message
  try {
    message = JSON.parse(line)
  } catch (error) {
    write({ id: null, ok: false, error: `bad JSON: ${error.message}` })
    return
  }
  const { id } = message
  const reply = (result) => write({ id, ok: true, result, final: false })
  enqueue(message, () => handle(message, reply)).then(
    (result) => write({ id, ok: true, result: result === undefined ? null : result, final: true }),
    (error) => write({ id, ok: false, error: String(error && error.message ? error.message : error),
      status: error && error.status, final: true }),
  )
})
lines.on('close', () => process.exit(0))
