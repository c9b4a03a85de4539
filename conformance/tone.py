"""Half a second of a 1 kHz beep (-18 dBFS, 10 ms fades) as 25 raw Opus packets of
20 ms (mono, 48 kHz, libopus at 24 kb/s; pre-skip 312), length-prefixed as an AUDIO
payload (docs/protocol.md, *Audio payload*). Embedded so that the kit needs no encoder:
a speaker under test decodes real Opus, and a person at the bench hears each frame as
one beep. Made once with ``audio.tones.tone`` and ``audio.encode.encode_opus``.
"""

from __future__ import annotations

import base64

from devices.frames import pack_packets, unpack_packets

PRE_SKIP = 312
FRAME_MS = 20
_B64 = (
    "Y3iAMP+Wwa2jPtlb0AAAAcbtqNPUGillm/XlvHqF3XTxYIl5iXQnt9Q+cnv7LliyUQ2jdCIyIc5NC6dBHoq5chz1"
    "wEB2t1VxJ4Bk0SVCig8zytpwVocAywWOgF3Od9u4g926Jj54nNcjmai8v1bWzrcG4f7j+IMHpkXUOJGZ9gVLIxhP"
    "LI53eJovxqo/p3DlklkuHq8rEDh7c5OlBYsnrIiRFT14mrLeQ5QtNzyk2QJ7v3JOOyxgDfQiPF62AHS9A885wAmL"
    "LQWVB+c04ZtWraCEquaoTaOYpcUyaJfsiJHjQXiast5DlC03PKTX0v67leBOhTKSlPHdvAOsjxTWM2TMOjA6N/O+"
    "VzVnx1WwPyiFLsX7l9d6OsV8QSMMCqdMiJHbSniast5D6ougGKOQEhZ55LzLb3tzGVwKnj3K5yUhu3wXvQ9rzjcX"
    "nlY3ehJN5rxsowXNSizS4/0f9xqi7ZlbbsYOGKISfXjMiJHjS3iast5D6ougGKOQEj7wP9UGIRK05w63/3kJE/vD"
    "TlmUhi9tUcYgy3ykzbEPxkuniuK7x4BIE+k2ILDfSJ/5EdLqD+9eR2snrIiR20l4mrLeQ+qLoBijk6B+tF4jm3GG"
    "UKb9hO1pUb3mHmsvdfKV7sSIlKyzb9XZuWKCFpdxb+YT0EYLmS2mv/iQ+wZU3mdiDqdMiJHjSHiast5D6ougGKOR"
    "Qd9l6BSThDu8UTSMIqu9MbXEJp9c7SVIQ4jkvzJxW4KBKJptddtSn6pv0PEKGOZp9FkRK2JbRXqnTIiR20l4mrLe"
    "Q+qLoBijk6CnGFQEwhC02/JLDp9KRZdlM5uhG4RlCD8Wmb0TT7AGtUDgWGubtXsNmlXXksBtEKNRthUGNw4yaJfs"
    "iJHjLkiZvy+kQRf2PosxOPz3KpJztZxMur0+edZdAdoKj4t0VOYm8z4Pfpim87cTPaAsSJm/L6RBF/Y+izEzWU9l"
    "+veixacTrlPbq8VqpWeFLBnFJVRkW6/IaOmSucAtSJm/L6RBF/Y+izEtQERMDC4Nko9hdKhSwKPascLIk2lsRS8j"
    "vV1TOJRs3F1oK0iZvy+kQRf2PosxPifQxbwT8T/DqtK5b89ZIdoFBnybpufknY31VOJvbyAtSJm/L6RBF/Y+izEt"
    "ttokqnH/p8Hm6tZ6BrW9EFVAU9kMyRUrZNfq4kaq1rhIKUiZvy+kQRf2PosxPidoLBd1lF58zvscB1M31lVqn6HX"
    "WDAqL3Bs2W3MMEiZvy+kQRf2PosxOPt+40l8pU5w/Wcf8yCgpxQkm9cCD/+ehta1RbdBAIvrKXB+QDBImb8vpEEX"
    "9j6LMS221t1AtKMnXmFw/UrnWHxRoRaiVAYA/BbezJNCOLm2eBpvYgosSJm/L6RBF/Y+izE4+79kmO9UkCCbmKaa"
    "By7Q9avQQEtsjloEIa3cy94PxXAvSJm/L6RBF/Y+izEtPueEXTDVr0RbrcGSX5iB73jggbo+X48haXhF9VJt11VW"
    "EnAuSJm/L6RBF/Y+izE4+8dIpK6oz9FOJsbItpbJF5ONVzDWSns67vWdehTcRE5BwEpImb8vpEEX9j6LMTNZT3eV"
    "7xDKpG7wKvyXGRvYt4EmFTid3nN5UEOTCWBUFG1Lprc/nQdypizjuZpv6ri+miCeVTItUOs80iwaaVa4nOwH4g1z"
    "VP1eAAa5ZUjXjx4/3q0s4kCtX6LgQF0k+Vypi1fqJacYTJMa7ChV5SyPnMWCAxf4yubbvhDkDg2SrErSnvA5Td8W"
    "3OkxTX+1iz9uOoUc0VK48oL0nz13oHuAKqyucp/evTp06xvw4BoXwSN2ImFfe35rn/uSx1mXYy160iODAisjxXHt"
    "mug2Pr56Wfwubzod2ba4jxfA65XvD2pmdml8fe0xS7ic1n6Hk03g0fYaHFVfqeJEiRKVacAAfywE/V1B1Gus48SN"
    "uKf2jARPfUg91Z1nFuEqT0xUD3fnpWHAC/hbo5iKYMtAfai9OWPc0T24nTiQGTv+O8KfkjawsQvL+kd+NWx6tZmV"
    "GrEdFOfx9B4Q5sxldPnnaiaTKNx+V4+0VqiPqD+3zp81RaPR"
)

#: One AUDIO payload: 25 packets, 500 ms.
BEEP = base64.b64decode(_B64)
PACKETS = unpack_packets(BEEP)
BEEP_MS = len(PACKETS) * FRAME_MS


def payload(packets: int = len(PACKETS)) -> bytes:
    """An AUDIO payload of the first ``packets`` packets of the beep."""
    return pack_packets(PACKETS[:packets])
