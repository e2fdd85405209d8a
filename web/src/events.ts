// The broker's event stream (server-sent events) for the key in this page, read with fetch so the
// bearer token goes in a header (EventSource cannot send one). Reconnects after a drop, resuming
// after the last event seen; stops when `signal` aborts.
import { useEffect, useRef } from "react";
import type { Key } from "./keys";
import { session } from "./session";

/** The pseudo-event sent each time the stream opens. */
export const OPENED = "stream.opened";

export interface BrokerEvent {
  topic: string;
  seq: number;
  data: unknown;
}

async function follow(key: Key, onEvent: (e: BrokerEvent) => void, signal: AbortSignal) {
  let last: number | null = null;
  while (!signal.aborted) {
    try {
      const { token } = await session(key);
      const response = await fetch("/v1/events", {
        headers: {
          accept: "text/event-stream",
          authorization: `Bearer ${token}`,
          ...(last !== null ? { "last-event-id": String(last) } : {}),
        },
        signal,
      });
      if (!response.ok || !response.body) throw new Error(response.statusText);
      // What happened before the stream (re)opened is not in it: readers read their state anew.
      onEvent({ topic: OPENED, seq: -1, data: null });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let topic = "message";
          let id: number | null = null;
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) topic = line.slice(6).trim();
            else if (line.startsWith("id:")) id = Number(line.slice(3).trim());
            else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
          }
          if (id === null || data.length === 0) continue;
          last = id;
          let payload: unknown = null;
          try {
            payload = JSON.parse(data.join("\n"));
          } catch {
            // A payload that is not JSON still says that something happened.
          }
          onEvent({ topic, seq: id, data: payload });
        }
      }
    } catch {
      if (signal.aborted) return;
    }
    // The stream ended or failed: wait a moment before resuming, without spinning.
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

/** Calls `onEvent` for each event the key's participant may see, while the component lives. */
export function useEvents(key: Key | null, onEvent: (e: BrokerEvent) => void) {
  const handler = useRef(onEvent);
  useEffect(() => {
    handler.current = onEvent;
  });
  useEffect(() => {
    if (!key) return;
    const abort = new AbortController();
    void follow(key, (e) => handler.current(e), abort.signal);
    return () => abort.abort();
  }, [key]);
}
