// The types of window.parley, the client's JS API (README, "The browser
// API"; made by web/boot.js and filled in by the Go side, wasm/), declared
// once for the views: they name these in JSDoc (`@type`, `@param`) as
// import("./types.js").Parley and so on. Nothing here runs; keep it in step
// with the README's table.
export {};

/**
 * A rejected call: every method's Promise rejects with an Error carrying a
 * code (words.js has plain words for the common ones).
 * @typedef {Error & {code: string, message: string}} ParleyError
 */

/**
 * @typedef {object} State
 * @property {'new' | 'locked' | 'ready' | 'revoked' | 'error'} status
 * @property {string} handle
 * @property {string} deviceId
 * @property {boolean} primary
 * @property {boolean} online
 * @property {boolean} expired
 * @property {'owner' | 'view'} role
 * @property {string | null} clientHash SHA-256 (hex) of the wasm bytes this
 *   tab instantiated, computed by boot.js; null if it could not hash them
 * @property {boolean} persistent
 * @property {boolean} canary
 * @property {'none' | 'passphrase' | 'passkey'} lock
 * @property {number} idleLockMs
 * @property {string} [lockReason]
 * @property {{code: string, message: string}} [error]
 */

/**
 * @typedef {object} Chat
 * @property {string} id a handle, or a group id ("g:…")
 * @property {string} lastText
 * @property {number} lastAt milliseconds since the epoch
 * @property {number} unread
 * @property {boolean} lastFile the last message carries a file
 * @property {string} [name] a group's name
 */

/**
 * @typedef {object} Attachment
 * @property {string} name
 * @property {string} type a MIME type
 * @property {number} size bytes
 */

/**
 * @typedef {object} Message
 * @property {string} id
 * @property {string} chatId
 * @property {string} from
 * @property {string} fromDevice
 * @property {string} text
 * @property {number} sentAt milliseconds since the epoch
 * @property {boolean} outgoing
 * @property {'pending' | 'sent' | 'delivered' | 'read'} status
 * @property {Attachment} [attachment]
 */

/**
 * @typedef {object} Device
 * @property {string} id
 * @property {string} name
 * @property {boolean} primary
 * @property {number} added seconds since the epoch
 * @property {number} attested seconds since the epoch
 * @property {number} expires seconds since the epoch
 * @property {boolean} thisDevice
 */

/**
 * @typedef {object} Group
 * @property {string} id "g:…"
 * @property {string} name
 * @property {string[]} members handles
 * @property {string[]} admins handles
 * @property {number} version
 * @property {boolean} admin this account is an admin
 * @property {boolean} member this account is a member
 * @property {boolean} left this account left
 */

/** @typedef {{payload: string, qrSvg: string, expires: number}} LinkOffer */
/** @typedef {{linkId: string, checkCode: string, deviceName: string}} PendingLink */
/** @typedef {{digits: string, qrSvg: string}} SafetyNumber */
/** @typedef {{passphrase: string} | {passkey: true}} LockSecret */

/**
 * The events of on(), by name.
 * @typedef {object} ParleyEvents
 * @property {{message: Message}} message
 * @property {{message: Message}} receipt
 * @property {object} chats
 * @property {object} group a group's state changed: name, members
 * @property {object} devices
 * @property {object} state
 * @property {{checkCode: string, linkId?: string}} link-check the check code to compare (linkId on the primary)
 * @property {{code?: 'offline'}} link-connection a link's wait cannot reach the relay and retries (code offline), or reaches it again (no code)
 * @property {object} sync
 * @property {{done: number, total: number, text: string}} sync-progress
 * @property {{messageId: string, done: number, total: number}} transfer-progress
 * @property {{chatId: string}} safety-number-changed
 * @property {{code: string, text: string, chatId?: string}} error
 */

/**
 * window.parley. Every method returns a Promise; failures reject with a
 * ParleyError.
 * @typedef {object} Parley
 * @property {Promise<void>} ready settles once the API works in this tab
 * @property {string} version
 * @property {{ready?: number}} timing milliseconds from navigation start (the boot benchmark)
 * @property {() => Promise<State>} state
 * @property {() => Promise<string>} deviceFingerprint
 * @property {(handle: string, deviceName: string) => Promise<void>} createAccount makes this browser the primary of a new account
 * @property {(deviceName: string) => Promise<LinkOffer>} startLink companion: the link code to show
 * @property {() => Promise<{handle: string, deviceId: string}>} waitLinked companion: completes the link (link-check fires first; resolves only after confirmLinkCode)
 * @property {() => Promise<void>} confirmLinkCode companion: the check code matches the primary's; send the join request
 * @property {() => Promise<void>} rejectLinkCode companion: the check code does not match; tell the primary and abandon the link
 * @property {(payload: string) => Promise<PendingLink>} approveLink primary
 * @property {(linkId: string) => Promise<void>} confirmLink primary
 * @property {(linkId: string) => Promise<void>} cancelLink primary
 * @property {(to: string, text: string) => Promise<{id: string}>} send to a handle or a group id
 * @property {(to: string, file: Blob) => Promise<{id: string}>} sendFile
 * @property {(messageId: string) => Promise<string>} fileURL an object URL of the decrypted attachment
 * @property {() => Promise<Chat[]>} chats most recent first
 * @property {(chatId: string, opts?: {before?: string, limit?: number}) => Promise<Message[]>} messages oldest first
 * @property {(chatId: string) => Promise<void>} markRead
 * @property {() => Promise<Device[]>} devices
 * @property {(id: string) => Promise<void>} revokeDevice
 * @property {(id: string, name: string) => Promise<void>} renameDevice
 * @property {() => Promise<void>} reattest primary: re-attest the companions
 * @property {(handle: string) => Promise<SafetyNumber>} safetyNumber
 * @property {(handle: string, digits: string) => Promise<void>} acknowledgeSafetyNumber pins the key whose number (safetyNumber's digits) the user was shown
 * @property {(name: string, members: string[]) => Promise<Group>} createGroup
 * @property {(g: string, handle: string) => Promise<void>} addMember
 * @property {(g: string, handle: string) => Promise<void>} removeMember
 * @property {() => Promise<Group[]>} groups
 * @property {(g: string, name: string) => Promise<void>} renameGroup admin devices only
 * @property {(g: string) => Promise<void>} leaveGroup members who are no admin
 * @property {(handle: string, name: string) => Promise<void>} setContactName synced across own devices
 * @property {(chatId: string, archived: boolean) => Promise<void>} setChatArchived synced across own devices
 * @property {(chatId: string, muted: boolean) => Promise<void>} setChatMuted synced across own devices
 * @property {(key: string, value: string) => Promise<void>} setSetting synced across own devices
 * @property {() => Promise<object>} syncedState
 * @property {(secret: LockSecret | null) => Promise<void>} setLock set, change or remove the lock
 * @property {() => Promise<void>} lock drop every key from memory
 * @property {(secret: LockSecret) => Promise<void>} unlock
 * @property {(ms: number) => Promise<void>} setIdleLock 0 = off; needs a lock
 * @property {() => Promise<object>} stats recent receive timings and storage counters
 * @property {<E extends keyof ParleyEvents>(event: E, callback: (e: ParleyEvents[E]) => void) => () => void} on returns the unsubscribe function
 */
