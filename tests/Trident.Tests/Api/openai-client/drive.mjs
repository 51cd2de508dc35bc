// Drives a Trident server with the official `openai` npm client, as a new user would: lists the models,
// asks for PNG, JPEG and WebP images (b64_json) and a URL result, and makes a video through /v1/videos. Every
// file is written to OUT_DIR for the test to decode with SkiaSharp and ffprobe; a line per call goes to stdout.
// Usage: node drive.mjs BASE_URL OUT_DIR   (the `openai` package installed beside this file, or on NODE_PATH)
import OpenAI from "openai";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const [baseURL, out] = process.argv.slice(2);
const client = new OpenAI({ baseURL: baseURL + "/v1", apiKey: "unused", maxRetries: 0, timeout: 300_000 });

const models = await client.models.list();
const model = models.data[0].id;
console.log(`models: ${models.data.map((m) => m.id).join(", ")}`);

for (const output_format of ["png", "jpeg", "webp"]) {
  const r = await client.images.generate({ model, prompt: "a red fox in the snow", size: "64x64", output_format, num_inference_steps: 2 });
  writeFileSync(join(out, `image.${output_format}`), Buffer.from(r.data[0].b64_json, "base64"));
  console.log(`images.generate ${output_format}: output_format=${r.output_format} size=${r.size} bytes=${Buffer.from(r.data[0].b64_json, "base64").length}`);
}

const u = await client.images.generate({ model, prompt: "a lighthouse", size: "64x64", response_format: "url", num_inference_steps: 2 });
const fetched = await fetch(u.data[0].url);
writeFileSync(join(out, "url.png"), Buffer.from(await fetched.arrayBuffer()));
console.log(`images.generate url: ${u.data[0].url} -> ${fetched.status} ${fetched.headers.get("content-type")}`);

let video = await client.videos.create({ model, prompt: "waves on a beach", seconds: "1", size: "64x64" });
console.log(`videos.create: ${video.id} ${video.status}`);
while (video.status === "queued" || video.status === "in_progress") {
  await new Promise((resolve) => setTimeout(resolve, 200));
  video = await client.videos.retrieve(video.id);
}
console.log(`videos.retrieve: ${video.id} ${video.status} progress=${video.progress} seconds=${video.seconds} size=${video.size}`);
const content = await client.videos.downloadContent(video.id);
writeFileSync(join(out, "video.mp4"), Buffer.from(await content.arrayBuffer()));
console.log(`videos.downloadContent: ${content.status} ${content.headers.get("content-type")}`);
const deleted = await client.videos.delete(video.id);
console.log(`videos.delete: ${deleted.id} deleted=${deleted.deleted}`);
