# The device's side of the ZigBee OTA Upgrade cluster, as the agent's modules import it: it
# decodes what a server sends (server to client) and encodes the device's requests and
# answers (client to server). The codec itself is in agent.zcl.frames, beside the formats
# it packs (one module, one set of names to hold once imported); this module names what the
# agent uses of it. The server's side is agent.zcl.server (never on a device).
from agent.zcl.frames import decode, encode_query_next, encode_block_request, \
    set_block_request, encode_page_request, encode_upgrade_end, encode_alert, \
    encode_activate_response, HASH_SIZE, UPGRADE_WAIT, CMD_IMAGE_NOTIFY, \
    CMD_QUERY_NEXT_RSP, CMD_PAGE_REQ, CMD_BLOCK_RSP, CMD_UPGRADE_END_RSP, CMD_ALERT_ACK, \
    CMD_ACTIVATE, S_SUCCESS, S_INVALID_IMAGE, S_WAIT_FOR_DATA, \
    S_NO_IMAGE_AVAILABLE  # noqa: F401 (the names agent.zcl.client, pager and commands use)
