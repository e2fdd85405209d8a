// How plans, resources and metrics read for people.
import type { Schemas, SearchItem } from "./api/client";
import { formatCredits, formatDuration } from "./money";

export function planPrice(pricing: Schemas["Pricing"]): string {
  const parts: string[] = [];
  if (pricing.reserved)
    parts.push(`${formatCredits(pricing.reserved.price)} credits / ${formatDuration(pricing.reserved.periodSeconds)}`);
  const u = pricing.payPerUse;
  if (u) {
    const units: [string | undefined, string][] = [
      [u.cpuCoreHour, "core-hour"],
      [u.memoryGibHour, "GiB-hour"],
      [u.gpuHour, "GPU-hour"],
      [u.networkGb, "GB"],
      [u.dataAccess, "access"],
      [u.storageGibMonth, "GiB-month"],
    ];
    for (const [amount, unit] of units) if (amount && amount !== "0") parts.push(`${formatCredits(amount)} / ${unit}`);
  }
  return parts.join(" · ") || "free";
}

export function size(mib: number): string {
  return mib >= 1024 ? `${+(mib / 1024).toFixed(1)} GiB` : `${mib} MiB`;
}

export function unitText(unit: Schemas["PlanUnit"]): string {
  const parts: string[] = [];
  if (unit.cpuMillicores) parts.push(`${unit.cpuMillicores / 1000} cores`);
  if (unit.memoryMib) parts.push(size(unit.memoryMib));
  if (unit.gpuPermille) parts.push(`${unit.gpuPermille / 1000} GPU`);
  if (unit.storageGib) parts.push(`${unit.storageGib} GiB disk`);
  if (unit.bandwidthMbps) parts.push(`${unit.bandwidthMbps} Mbit/s`);
  if (unit.dataAccesses) parts.push(`${unit.dataAccesses} accesses`);
  return parts.join(", ") || "—";
}

export function metricText(m: Schemas["CertifiedMetric"]): string {
  switch (m.kind) {
    case "latency-ms":
      return `${m.value} ms latency`;
    case "uptime-percent":
      return `${m.value}% uptime`;
    case "benchmark-score":
      return `benchmark ${m.value}`;
    default:
      return `${m.kind} ${m.value}`;
  }
}

export function certified(item: SearchItem): string {
  return item.certifiedMetrics.map(metricText).join(", ") || "none certified";
}

export function shortDid(did: string): string {
  return did.length > 24 ? `${did.slice(0, 14)}…${did.slice(-6)}` : did;
}
