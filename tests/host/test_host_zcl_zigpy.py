"""The ZCL codec of both sides (agent.zcl.frames, agent.zcl.server) against zigpy's own OTA
cluster definitions, both ways, for every command.

For each command: the bytes the sending side's encoder writes are parsed by zigpy
(Ota.deserialize, the path zigpy takes for a received frame) to the same field values,
zigpy's serializer writes byte-identical frames, and the receiving side's decoder reads
zigpy's bytes back to the same fields.
"""
from typing import Final
from unittest import mock

import pytest
from hypothesis import given, settings, strategies as st

import zigpy.types as t
from zigpy.zcl import foundation
from zigpy.zcl.clusters.general import Ota

from agent.zcl import frames as zcl, server as zcl_server
from agent.errors import OtaError, BAD_FRAME

C2S = foundation.Direction.Client_to_Server
S2C = foundation.Direction.Server_to_Client
MFR = 0x1234

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
ieee = st.binary(min_size=8, max_size=8)
digest = st.binary(min_size=32, max_size=32)
opt16 = st.none() | u16
optieee = st.none() | ieee
FAST = settings(max_examples=60, deadline=None)


# The project's manufacturer-specific commands, declared the way a zigpy quirk would.
class Hash(t.FixedList, item_type=t.uint8_t, length=32):
    pass


class AlertFieldControl(t.bitmap8):
    Hash = 0x01
    Extra = 0x02


class AlertCommand(foundation.CommandSchema):
    field_control: AlertFieldControl
    alert_seq: t.uint16_t
    alert_code: t.uint16_t
    reason: t.uint16_t
    digest: Hash = t.StructField(requires=lambda s: s.field_control & AlertFieldControl.Hash)
    extra: t.uint32_t = t.StructField(
        requires=lambda s: s.field_control & AlertFieldControl.Extra)


class OtaWithAlerts(Ota):
    class ServerCommandDefs(Ota.ServerCommandDefs):
        alert: Final = foundation.ZCLCommandDef(
            id=0xF0, schema=AlertCommand, is_manufacturer_specific=True)
        activate_response: Final = foundation.ZCLCommandDef(
            id=0xF3, schema={"outcome": t.uint8_t, "digest": Hash},
            is_manufacturer_specific=True)

    class ClientCommandDefs(Ota.ClientCommandDefs):
        alert_ack: Final = foundation.ZCLCommandDef(
            id=0xF1, schema={"alert_seq": t.uint16_t}, is_manufacturer_specific=True)
        activate_image: Final = foundation.ZCLCommandDef(
            id=0xF2, schema={"digest": Hash, "activation_time": t.UTCTime},
            is_manufacturer_specific=True)


def _cluster(cls=Ota):
    return cls(mock.MagicMock(), is_server=True)


def zigpy_frame(zdef, direction, tsn, manufacturer=None, **fields):
    hdr = foundation.ZCLHeader.cluster(tsn, zdef.id, manufacturer, direction)
    return hdr.serialize() + zdef.schema(**fields).serialize()


def as_zigpy_value(v):
    return list(v) if isinstance(v, bytes) and len(v) in (8, 32) else v


def receive(frame, direction, mfr=None):
    """The frame decoded by the side it goes to (server.parse adds .data and .digest)."""
    decode = zcl.decode if direction == S2C else zcl_server.decode
    f = decode(frame, len(frame), None, mfr)
    g = zcl_server.parse(frame, mfr)
    for k in ("known", "command", "seq", "status", "offset", "data_off", "hash_off"):
        assert getattr(f, k) == getattr(g, k), k
    return g


def check(ours, zdef, direction, tsn, fields, ours_fields, manufacturer=None,
          cluster_cls=Ota):
    """ours: our encoder's bytes; fields: zigpy field values; ours_fields: Frame values."""
    hdr, cmd = _cluster(cluster_cls).deserialize(ours)
    assert hdr.frame_control.frame_type == foundation.FrameType.CLUSTER_COMMAND
    assert hdr.direction == direction
    assert hdr.tsn == tsn
    assert hdr.command_id == zdef.id
    assert hdr.manufacturer == manufacturer
    assert isinstance(cmd, zdef.schema), cmd
    for k, v in fields.items():
        got = getattr(cmd, k)
        assert (bytes(got) if isinstance(v, bytes) else got) == v, k
    # zigpy's serializer writes exactly our bytes ...
    zfields = {k: as_zigpy_value(v) for k, v in fields.items()}
    theirs = zigpy_frame(zdef, direction, tsn, manufacturer, **zfields)
    assert theirs == ours
    # ... and the receiving side's decoder reads them to the same values
    f = receive(theirs, direction)
    assert f.known and f.seq == tsn and f.command == zdef.id
    assert f.to_client == (direction == S2C)
    assert f.mfr_code == manufacturer
    for k, v in ours_fields.items():
        assert getattr(f, k) == v, k
    return f


@FAST
@given(seq=u8, ptype=st.integers(0, 3), jitter=u8, m=u16, it=u16, fv=u32)
def test_image_notify(seq, ptype, jitter, m, it, fv):
    ours = zcl_server.build(zcl_server.encode_image_notify, seq, ptype, jitter, m, it, fv)
    names = (("manufacturer_code", "manufacturer", m), ("image_type", "image_type", it),
             ("new_file_version", "file_version", fv))[:ptype]
    fields = {"payload_type": ptype, "query_jitter": jitter}
    mine = {"payload_type": ptype, "jitter": jitter, "manufacturer": None,
            "image_type": None, "file_version": None}
    for z, o, v in names:
        fields[z] = v
        mine[o] = v
    check(ours, Ota.ClientCommandDefs.image_notify, S2C, seq, fields, mine)


@FAST
@given(seq=u8, m=u16, it=u16, fv=u32, hw=opt16)
def test_query_next_image(seq, m, it, fv, hw):
    ours = zcl_server.build(zcl.encode_query_next, seq, m, it, fv, hw)
    fields = {"field_control": 0 if hw is None else 1, "manufacturer_code": m,
              "image_type": it, "current_file_version": fv}
    if hw is not None:
        fields["hardware_version"] = hw
    check(ours, Ota.ServerCommandDefs.query_next_image, C2S, seq, fields,
          {"manufacturer": m, "image_type": it, "file_version": fv, "hw_version": hw})


@FAST
@given(seq=u8, status=st.sampled_from([0x00, 0x98, 0x7E]), m=u16, it=u16, fv=u32, size=u32,
       specific=st.booleans())
def test_query_responses(seq, status, m, it, fv, size, specific):
    enc = zcl_server.encode_file_response if specific else zcl_server.encode_query_next_response
    zdef = (Ota.ClientCommandDefs.query_specific_file_response if specific
            else Ota.ClientCommandDefs.query_next_image_response)
    ours = zcl_server.build(enc, seq, status, m, it, fv, size)
    fields = {"status": status}
    mine = {"status": status, "manufacturer": None, "image_size": None}
    if status == 0:
        fields.update(manufacturer_code=m, image_type=it, file_version=fv, image_size=size)
        mine.update(manufacturer=m, image_type=it, file_version=fv, image_size=size)
    check(ours, zdef, S2C, seq, fields, mine)


@FAST
@given(seq=u8, m=u16, it=u16, fv=u32, off=u32, mx=u8, addr=optieee, period=opt16)
def test_image_block_request(seq, m, it, fv, off, mx, addr, period):
    ours = zcl_server.build(zcl.encode_block_request, seq, m, it, fv, off, mx, addr, period)
    fc = (0 if addr is None else 1) | (0 if period is None else 2)
    fields = {"field_control": fc, "manufacturer_code": m, "image_type": it,
              "file_version": fv, "file_offset": off, "maximum_data_size": mx}
    if addr is not None:
        fields["request_node_addr"] = addr
    if period is not None:
        fields["minimum_block_period"] = period
    check(ours, Ota.ServerCommandDefs.image_block, C2S, seq, fields,
          {"field_control": fc, "offset": off, "max_size": mx, "ieee": addr,
           "min_period": period})


@FAST
@given(seq=u8, m=u16, it=u16, fv=u32, off=u32, mx=u8, ps=u16, sp=u16, addr=optieee)
def test_image_page_request(seq, m, it, fv, off, mx, ps, sp, addr):
    ours = zcl_server.build(zcl.encode_page_request, seq, m, it, fv, off, mx, ps, sp, addr)
    fields = {"field_control": 0 if addr is None else 1, "manufacturer_code": m,
              "image_type": it, "file_version": fv, "file_offset": off,
              "maximum_data_size": mx, "page_size": ps, "response_spacing": sp}
    if addr is not None:
        fields["request_node_addr"] = addr
    check(ours, Ota.ServerCommandDefs.image_page, C2S, seq, fields,
          {"offset": off, "max_size": mx, "page_size": ps, "spacing": sp, "ieee": addr})


@FAST
@given(seq=u8, m=u16, it=u16, fv=u32, off=u32, data=st.binary(max_size=254))
def test_image_block_response_success(seq, m, it, fv, off, data):
    ours = zcl_server.build(zcl_server.encode_block_response, seq, m, it, fv, off, data)
    f = check(ours, Ota.ClientCommandDefs.image_block_response, S2C, seq,
              {"status": 0, "manufacturer_code": m, "image_type": it, "file_version": fv,
               "file_offset": off, "image_data": data},
              {"status": 0, "manufacturer": m, "offset": off, "data_len": len(data)})
    assert f.data == data


def test_image_block_response_255_bytes():
    # zigpy refuses to write a 255-byte octet string but reads one
    data = bytes(range(255))
    ours = zcl_server.build(zcl_server.encode_block_response, 1, MFR, 7, 1, 0, data)
    _, cmd = _cluster().deserialize(ours)
    assert cmd.image_data == data


@FAST
@given(seq=u8, now=u32, req=u32, period=u16)
def test_image_block_response_wait(seq, now, req, period):
    ours = zcl_server.build(zcl_server.encode_block_wait, seq, now, req, period)
    check(ours, Ota.ClientCommandDefs.image_block_response, S2C, seq,
          {"status": foundation.Status.WAIT_FOR_DATA, "current_time": now,
           "request_time": req, "minimum_block_period": period},
          {"status": 0x97, "current_time": now, "request_time": req, "min_period": period,
           "data_off": None})


@pytest.mark.parametrize("status", [0x95, 0x98, 0x7E])
def test_image_block_response_abort(status):
    ours = zcl_server.build(zcl_server.encode_block_status, 9, status)
    check(ours, Ota.ClientCommandDefs.image_block_response, S2C, 9, {"status": status},
          {"status": status, "manufacturer": None, "current_time": None})


@FAST
@given(seq=u8, status=st.sampled_from([0x00, 0x95, 0x96, 0x99]), m=u16, it=u16, fv=u32)
def test_upgrade_end_request(seq, status, m, it, fv):
    ours = zcl_server.build(zcl.encode_upgrade_end, seq, status, m, it, fv)
    check(ours, Ota.ServerCommandDefs.upgrade_end, C2S, seq,
          {"status": status, "manufacturer_code": m, "image_type": it, "file_version": fv},
          {"status": status, "manufacturer": m, "image_type": it, "file_version": fv})


@FAST
@given(seq=u8, m=u16, it=u16, fv=u32, now=u32, when=u32)
def test_upgrade_end_response(seq, m, it, fv, now, when):
    ours = zcl_server.build(zcl_server.encode_upgrade_end_response, seq, m, it, fv, now, when)
    check(ours, Ota.ClientCommandDefs.upgrade_end_response, S2C, seq,
          {"manufacturer_code": m, "image_type": it, "file_version": fv,
           "current_time": now, "upgrade_time": when},
          {"manufacturer": m, "current_time": now, "upgrade_time": when})


@FAST
@given(seq=u8, addr=ieee, m=u16, it=u16, fv=u32, stack=u16)
def test_query_device_specific_file_request(seq, addr, m, it, fv, stack):
    # the device never sends one: the server reads zigpy's
    theirs = zigpy_frame(Ota.ServerCommandDefs.query_specific_file, C2S, seq,
                         request_node_addr=list(addr), manufacturer_code=m, image_type=it,
                         file_version=fv, current_zigbee_stack_version=stack)
    f = receive(theirs, C2S)
    assert (f.known, f.command, f.seq, f.to_client) == (True, 0x08, seq, False)
    assert (f.ieee, f.manufacturer, f.image_type, f.file_version, f.stack_version) == (
        addr, m, it, fv, stack)


@FAST
@given(seq=u8, to_client=st.booleans(), cmd=u8, status=u8, mfr=st.none() | u16)
def test_default_response(seq, to_client, cmd, status, mfr):
    ours = zcl_server.build(zcl_server.encode_default_response, seq, to_client, cmd, status, mfr)
    direction = S2C if to_client else C2S
    hdr, rsp = _cluster().deserialize(ours)
    assert hdr.frame_control.frame_type == foundation.FrameType.GLOBAL_COMMAND
    assert hdr.command_id == foundation.GeneralCommand.Default_Response
    assert (hdr.tsn, hdr.direction, hdr.manufacturer) == (seq, direction, mfr)
    assert hdr.frame_control.disable_default_response == 1
    assert isinstance(rsp, foundation.DefaultResponse)
    assert (rsp.command_id, rsp.status) == (cmd, status)
    fc = foundation.FrameControl.general(direction, mfr is not None).replace(
        disable_default_response=1)
    theirs = (foundation.ZCLHeader(fc, mfr, seq, foundation.GeneralCommand.Default_Response)
              .serialize() + foundation.DefaultResponse(command_id=cmd, status=status)
              .serialize())
    assert theirs == ours
    f = receive(theirs, direction)
    assert (f.known, f.cluster, f.rsp_command, f.status, f.mfr_code, f.to_client) == (
        True, False, cmd, status, mfr, to_client)


def test_zigpy_default_response_to_an_unknown_manufacturer_command():
    # what a plain zigpy-based server sends back for an Alert it does not know
    hdr = foundation.ZCLHeader.general(5, foundation.GeneralCommand.Default_Response, MFR, S2C)
    frame = hdr.serialize() + foundation.DefaultResponse(
        command_id=0xF0, status=foundation.Status.UNSUP_MANUF_CLUSTER_COMMAND).serialize()
    f = receive(frame, S2C, MFR)
    assert (f.rsp_command, f.status, f.mfr_code, f.seq) == (0xF0, 0x83, MFR, 5)
    assert f.status == zcl_server.S_UNSUP_MANUF_CLUSTER_COMMAND


@FAST
@given(seq=u8, aseq=u16, code=st.sampled_from([0x8F72, 0x8F1C, 0x8F1B, 0x8F43, 0x8F66]),
       reason=u16, h=st.none() | digest, extra=st.none() | u32)
def test_alert(seq, aseq, code, reason, h, extra):
    ours = zcl_server.build(zcl.encode_alert, seq, MFR, aseq, code, reason, h, extra)
    fc = (0 if h is None else 1) | (0 if extra is None else 2)
    fields = {"field_control": fc, "alert_seq": aseq, "alert_code": code, "reason": reason}
    if h is not None:
        fields["digest"] = h
    if extra is not None:
        fields["extra"] = extra
    f = check(ours, OtaWithAlerts.ServerCommandDefs.alert, C2S, seq, fields,
              {"alert_seq": aseq, "alert_code": code, "reason": reason, "extra": extra},
              MFR, OtaWithAlerts)
    assert f.digest == h


@FAST
@given(seq=u8, aseq=u16)
def test_alert_ack(seq, aseq):
    ours = zcl_server.build(zcl_server.encode_alert_ack, seq, MFR, aseq)
    check(ours, OtaWithAlerts.ClientCommandDefs.alert_ack, S2C, seq, {"alert_seq": aseq},
          {"alert_seq": aseq}, MFR, OtaWithAlerts)


@FAST
@given(seq=u8, h=digest, when=u32)
def test_activate_image(seq, h, when):
    ours = zcl_server.build(zcl_server.encode_activate, seq, MFR, h, when)
    f = check(ours, OtaWithAlerts.ClientCommandDefs.activate_image, S2C, seq,
              {"digest": h, "activation_time": when}, {"activation_time": when}, MFR,
              OtaWithAlerts)
    assert f.digest == h


@FAST
@given(seq=u8, outcome=st.integers(0, 3), h=digest)
def test_activate_response(seq, outcome, h):
    ours = zcl_server.build(zcl.encode_activate_response, seq, MFR, outcome, h)
    zdef = OtaWithAlerts.ServerCommandDefs.activate_response
    hdr, cmd = _cluster(OtaWithAlerts).deserialize(ours)
    assert (hdr.command_id, hdr.manufacturer, hdr.tsn, hdr.direction) == (0xF3, MFR, seq, C2S)
    assert (cmd.outcome, bytes(cmd.digest)) == (outcome, h)
    # this one asks for a default response on error only
    fc = foundation.FrameControl.cluster(C2S, True).replace(disable_default_response=1)
    theirs = (foundation.ZCLHeader(fc, MFR, seq, zdef.id).serialize()
              + zdef.schema(outcome=outcome, digest=list(h)).serialize())
    assert theirs == ours
    f = receive(theirs, C2S, MFR)
    assert (f.outcome, f.digest, f.seq) == (outcome, h, seq)


@pytest.mark.parametrize("frame", [
    zcl_server.build(zcl.encode_alert, 1, MFR, 2, 0x8F72, 0, bytes(32), 7),
    zcl_server.build(zcl_server.encode_alert_ack, 1, MFR, 2),
    zcl_server.build(zcl_server.encode_activate, 1, MFR, bytes(32), 0),
    zcl_server.build(zcl.encode_activate_response, 1, MFR, 0, bytes(32)),
])
def test_plain_zigpy_ota_cluster_leaves_manufacturer_commands_alone(frame):
    # the stock cluster does not mistake them for a standard command: the payload stays raw
    hdr, payload = _cluster().deserialize(frame)
    assert hdr.frame_control.is_manufacturer_specific == 1
    assert hdr.manufacturer == MFR
    assert hdr.command_id not in Ota.server_commands
    assert hdr.command_id not in Ota.client_commands
    assert payload == frame[5:]


def test_zigpy_rejects_what_we_reject():
    ours = zcl_server.build(zcl_server.encode_block_response, 1, MFR, 7, 1, 0, b"abcdef")
    for cut in (4, 10, len(ours) - 1):
        with pytest.raises(OtaError) as e:
            zcl.decode(ours[:cut], cut)
        assert e.value.reason == BAD_FRAME
        with pytest.raises(ValueError):
            _cluster().deserialize(ours[:cut])
