// zigbee-herdsman's own OTA server code updating a device over UDP on loopback.
//
//   node ota_server.js IMAGE.ota PORT (page|block) [RESPONSE_DELAY_MS]
//
// What runs of zigbee-herdsman: parseOtaImage reads the image; Zcl.Frame.create/toBuffer
// encode every frame sent and Zcl.Header/Zcl.Frame.fromBuffer parse every frame received;
// OtaSession (controller/helpers/ota) serves the download: it waits for Image Block and Page
// Requests and the Upgrade End Request and answers them with its own buildImageBlockPayload
// and page loop. What stands in for the parts that need a radio and a database, written
// after herdsman's Device.updateOta and Endpoint.commandResponse: an endpoint whose
// commandResponse sends the frame as herdsman builds it (cluster-specific, server to client,
// default response disabled) in one UDP datagram, and waitForOtaCommand, which resolves
// with the parsed frame of the first datagram carrying the awaited command (or a Default
// Response to defaultRspCommandId), as herdsman's adapter waitFor does; a frame nobody
// waits for is dropped, as a real adapter does, except the device's own Query Next Image,
// answered NO_IMAGE_AVAILABLE as Zigbee2MQTT does when no update is scheduled.
// The update follows Device.updateOta: Image Notify (payload type 0, jitter 100), the
// Query Next Image it brings (awaited up to 60 s), the Query Next Image Response, an
// OtaSession, the Upgrade End Response (current time 0, upgrade time 1). In "block" mode
// page requests are answered Default Response UNSUP_COMMAND (0x81, UNSUP_CLUSTER_COMMAND
// before ZCL 8), as a server without them answers, so OtaSession serves block requests.
// Output: one JSON line of figures on stdout; exit 0 when the device came back running the
// new version.
const dgram = require("node:dgram");
const fs = require("node:fs");
const {performance} = require("node:perf_hooks");
const {Zcl, parseOtaImage} = require("zigbee-herdsman");
const {OtaSession} = require("zigbee-herdsman/dist/controller/helpers/ota");

const [file, portText, mode = "page", delayText = "5"] = process.argv.slice(2);
const image = parseOtaImage(fs.readFileSync(file));
const OTA = Zcl.Clusters.genOta;
const QUERY = OTA.commands.queryNextImageRequest.ID;
const PAGE = OTA.commands.imagePageRequest.ID;
const BLOCK = OTA.commands.imageBlockRequest.ID;
const stats = {mode, elements: image.elements.map((e) => e.tagId), pageRequests: 0,
    blockRequests: 0, pagesRefused: 0, blockResponses: 0, notifyToQueryMs: null,
    downloadSeconds: null, endStatus: null, versionBefore: null, versionAfter: null};
const sock = dgram.createSocket("udp4");
const waiters = [];
let peer = null;
let tsn = 0;

function send(frame) {
    if (peer !== null) {
        sock.send(frame.toBuffer(), peer.port, peer.address);
    }
}

const endpoint = {
    ID: 1,
    async commandResponse(clusterKey, commandKey, payload, options, transactionSequenceNumber) {
        tsn = (tsn + 1) & 0xff;
        const frame = Zcl.Frame.create(Zcl.FrameType.SPECIFIC, Zcl.Direction.SERVER_TO_CLIENT,
            true, undefined, transactionSequenceNumber ?? tsn, commandKey, clusterKey, payload, {});
        if (commandKey === "imageBlockResponse") {
            stats.blockResponses++;
        }
        send(frame);
    },
};

function defaultResponse(cmdId, statusCode, seq) {
    send(Zcl.Frame.create(Zcl.FrameType.GLOBAL, Zcl.Direction.SERVER_TO_CLIENT, true, undefined,
        seq, "defaultRsp", "genOta", {cmdId, statusCode}, {}));
}

function waitForOtaCommand(endpointId, commandId, defaultRspCommandId, timeout) {
    let waiter;
    const promise = new Promise((resolve, reject) => {
        waiter = {commandId, defaultRspCommandId, resolve, reject, timer: null};
        if (timeout >= 0) {
            waiter.timer = setTimeout(() => {
                cancel();
                reject(new Error(`timed out after ${timeout} ms`));
            }, Math.min(timeout, 2147483647));
        }
        waiters.push(waiter);
    });
    const cancel = () => {
        const i = waiters.indexOf(waiter);
        if (i >= 0) {
            waiters.splice(i, 1);
        }
        clearTimeout(waiter.timer);
    };
    return {promise, cancel};
}

sock.on("message", (msg, rinfo) => {
    peer = rinfo;
    let header;
    let frame;
    try {
        header = Zcl.Header.fromBuffer(msg);
        frame = Zcl.Frame.fromBuffer(OTA.ID, header, msg, {});
    } catch {
        return; // the device's manufacturer-specific alerts mean nothing to herdsman
    }
    const specific = header.isSpecific;
    const cmd = header.commandIdentifier;
    if (specific && cmd === PAGE) {
        stats.pageRequests++;
        if (mode === "block") {
            stats.pagesRefused++;
            defaultResponse(PAGE, Zcl.Status.UNSUP_COMMAND, header.transactionSequenceNumber);
            return;
        }
    } else if (specific && cmd === BLOCK) {
        stats.blockRequests++;
    }
    const i = waiters.findIndex((w) => specific ? cmd === w.commandId
        : header.isGlobal && cmd === Zcl.Foundation.defaultRsp.ID && frame.payload.cmdId === w.defaultRspCommandId);
    if (i >= 0) {
        const w = waiters.splice(i, 1)[0];
        clearTimeout(w.timer);
        w.resolve(frame);
        return;
    }
    if (specific && cmd === QUERY) {
        endpoint.commandResponse("genOta", "queryNextImageResponse",
            {status: Zcl.Status.NO_IMAGE_AVAILABLE}, undefined, header.transactionSequenceNumber);
    }
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
    await new Promise((resolve) => sock.bind(Number(portText), "127.0.0.1", resolve));
    // the device's own first query, at its start: nothing scheduled yet
    const first = await waitForOtaCommand(1, QUERY, -1, 60000).promise;
    stats.versionBefore = first.payload.fileVersion;
    await endpoint.commandResponse("genOta", "queryNextImageResponse",
        {status: Zcl.Status.NO_IMAGE_AVAILABLE}, undefined, first.header.transactionSequenceNumber);
    await sleep(1500); // the device is idle now, its next poll seconds away
    // "update" pressed: Device.updateOta's steps
    const query = waitForOtaCommand(1, QUERY, OTA.commandsResponse.imageNotify.ID, 60000);
    const t0 = performance.now();
    await endpoint.commandResponse("genOta", "imageNotify", {payloadType: 0, queryJitter: 100},
        {sendPolicy: "immediate"});
    const q = await query.promise;
    stats.notifyToQueryMs = Math.round((performance.now() - t0) * 10) / 10;
    if (!(q.payload.fileVersion < image.header.fileVersion)) {
        throw new Error(`nothing newer for version ${q.payload.fileVersion}`);
    }
    const h = image.header;
    await endpoint.commandResponse("genOta", "queryNextImageResponse", {status: Zcl.Status.SUCCESS,
        manufacturerCode: h.manufacturerCode, imageType: h.imageType, fileVersion: h.fileVersion,
        imageSize: h.totalImageSize}, undefined, q.header.transactionSequenceNumber);
    const session = new OtaSession("0x00124b0000000001", endpoint, image, () => {},
        {requestTimeout: 150000, responseDelay: Number(delayText), baseSize: 50}, waitForOtaCommand);
    const end = await session.run(new AbortController().signal);
    stats.downloadSeconds = Math.round(performance.now() - session.startTime) / 1000;
    stats.endStatus = end.payload.status;
    if (end.payload.status !== Zcl.Status.SUCCESS) {
        defaultResponse(OTA.commands.upgradeEndRequest.ID, Zcl.Status.SUCCESS, end.header.transactionSequenceNumber);
        throw new Error(`upgrade end status ${end.payload.status}`);
    }
    await endpoint.commandResponse("genOta", "upgradeEndResponse", {manufacturerCode: h.manufacturerCode,
        imageType: h.imageType, fileVersion: h.fileVersion, currentTime: 0, upgradeTime: 1},
        undefined, end.header.transactionSequenceNumber);
    // the device resets into the new image; its next query names the version it runs
    while (true) {
        const again = await waitForOtaCommand(1, QUERY, -1, 90000).promise;
        await endpoint.commandResponse("genOta", "queryNextImageResponse",
            {status: Zcl.Status.NO_IMAGE_AVAILABLE}, undefined, again.header.transactionSequenceNumber);
        if (again.payload.fileVersion === h.fileVersion) {
            stats.versionAfter = again.payload.fileVersion;
            break;
        }
    }
}

main().then(() => {
    console.log(JSON.stringify(stats));
    sock.close();
    process.exit(0);
}, (error) => {
    stats.error = error.message;
    console.log(JSON.stringify(stats));
    process.exit(1);
});
