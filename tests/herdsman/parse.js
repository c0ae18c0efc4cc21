// Lists the sub-elements zigbee-herdsman's own OTA image parser finds in each file named on
// the command line, as one JSON line per file: {"file", "elements": [{"tag", "length"}]}
// or {"file", "error"}.
const fs = require("node:fs");
const {parseOtaImage} = require("zigbee-herdsman");

for (const file of process.argv.slice(2)) {
    try {
        const image = parseOtaImage(fs.readFileSync(file));
        const elements = image.elements.map((e) => ({tag: e.tagId, length: e.data.length}));
        console.log(JSON.stringify({file, elements}));
    } catch (error) {
        console.log(JSON.stringify({file, error: error.message}));
    }
}
