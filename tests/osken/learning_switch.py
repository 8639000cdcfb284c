"""A MAC-learning switch as an os-ken application, for the end-to-end controller tests.

Like Ryu's simple_switch_13 in behaviour (our own code): on connect it sends every table
miss to the controller; on a packet-in it learns (switch, source MAC) -> in_port, and when the
destination is known it installs a flow (in_port, eth_dst, eth_src -> output) before sending
the packet on; unknown destinations are flooded with a packet-out.

OpenFlow version: 1.3 by default, 1.0 with XS_OSKEN_OF=1.0. Events are printed one per line
on stdout for the test to follow: `connected <dpid> <version>`, `packet_in <dpid> <in_port>
<src> <dst>`, `flow <dpid> <in_port> <src> <dst> <out_port>`.
"""

import os

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import mac as mac_lib
from os_ken.lib.packet import ether_types, ethernet, packet
from os_ken.ofproto import ofproto_v1_0, ofproto_v1_3

OF10 = os.environ.get("XS_OSKEN_OF", "1.3") == "1.0"
FLOW_PRIORITY = 10


def say(*words):
    print(*words, flush=True)


class LearningSwitch(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_0.OFP_VERSION] if OF10 else [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.where = {}  # dpid -> {mac: port}

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def on_features(self, ev):
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        if OF10:
            # Whole packets in packet-ins; OpenFlow 1.0 sends misses to the controller anyway.
            dp.send_msg(parser.OFPSetConfig(dp, ofp.OFPC_FRAG_NORMAL, 0xFFFF))
        else:
            # The table-miss rule: everything unmatched goes to the controller, unbuffered.
            to_ctl = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
            inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, to_ctl)]
            dp.send_msg(parser.OFPFlowMod(datapath=dp, priority=0, match=parser.OFPMatch(), instructions=inst))
        say("connected", dp.id, "1.0" if OF10 else "1.3")

    def install(self, dp, in_port, src, dst, out_port):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        actions = [parser.OFPActionOutput(out_port)]
        if OF10:
            match = parser.OFPMatch(in_port=in_port, dl_src=mac_lib.haddr_to_bin(src),
                                    dl_dst=mac_lib.haddr_to_bin(dst))
            mod = parser.OFPFlowMod(datapath=dp, match=match, command=ofp.OFPFC_ADD, priority=FLOW_PRIORITY,
                                    actions=actions)
        else:
            match = parser.OFPMatch(in_port=in_port, eth_src=src, eth_dst=dst)
            inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
            mod = parser.OFPFlowMod(datapath=dp, priority=FLOW_PRIORITY, match=match, instructions=inst)
        dp.send_msg(mod)
        say("flow", dp.id, in_port, src, dst, out_port)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def on_packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        in_port = msg.in_port if OF10 else msg.match["in_port"]
        eth = packet.Packet(msg.data).get_protocol(ethernet.ethernet)
        if eth is None or eth.ethertype == ether_types.ETH_TYPE_LLDP:
            return
        say("packet_in", dp.id, in_port, eth.src, eth.dst)
        table = self.where.setdefault(dp.id, {})
        table[eth.src] = in_port
        out_port = table.get(eth.dst)
        if out_port is not None and out_port != in_port:
            self.install(dp, in_port, eth.src, eth.dst, out_port)
        else:
            out_port = ofp.OFPP_FLOOD
        # Send this packet on: by its buffer when the switch kept one, else with its bytes.
        buffered = msg.buffer_id != ofp.OFP_NO_BUFFER
        out = parser.OFPPacketOut(datapath=dp, buffer_id=msg.buffer_id, in_port=in_port,
                                  actions=[parser.OFPActionOutput(out_port)],
                                  data=None if buffered else msg.data)
        dp.send_msg(out)
