"""Run by Debian's python3 (python3-uno) against a headless soffice listening on a socket:
LibreOffice exports a new Writer document to PDF and signs it itself (the PDF export's
SignPDF, with SignatureCertificate one of the personal certificates of the NSS database
named by MOZILLA_CERTIFICATE_FOLDER, the virtual card's included).

    python3 uno_sign.py PORT OUT.pdf"""

import sys
import time

import uno
from com.sun.star.beans import PropertyValue

MACRO = "vnd.sun.star.script:signet_login.py${}?language=Python&location=user"


def properties(**values):
    out = []
    for name, value in values.items():
        prop = PropertyValue()
        prop.Name, prop.Value = name, value
        out.append(prop)
    return tuple(out)


def connect(port):
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext(
        "com.sun.star.bridge.UnoUrlResolver", local
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            return resolver.resolve(
                f"uno:socket,host=127.0.0.1,port={port};urp;StarOffice.ComponentContext"
            )
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main(port, out):
    ctx = connect(port)
    smgr = ctx.ServiceManager
    scripts = smgr.createInstanceWithContext(
        "com.sun.star.script.provider.MasterScriptProviderFactory", ctx
    ).createScriptProvider("")

    def macro(name):
        return scripts.getScript(MACRO.format(name)).invoke((), (), ())[0]

    desktop = smgr.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
    print("macro start:", macro("start"), flush=True)
    security = smgr.createInstanceWithContext("com.sun.star.xml.crypto.SEInitializer", ctx)
    environment = security.createSecurityContext("").getSecurityEnvironment()
    print("macro login:", macro("login"), flush=True)
    personal = environment.getPersonalCertificates()
    print("personal:", [c.SubjectPublicKeyAlgorithm for c in personal], flush=True)
    certificate = next(c for c in personal if "RSA" in c.SubjectPublicKeyAlgorithm)
    doc = desktop.loadComponentFromURL(
        "private:factory/swriter", "_blank", 0, properties(Hidden=True)
    )
    doc.Text.insertString(doc.Text.End, "Signed by LibreOffice with a Signet key.", False)
    signing = properties(
        SignPDF=True,
        SignatureCertificate=certificate,
        SignaturePassword="",
        SignatureReason="Signet virtual card test",
    )
    filter_data = uno.Any("[]com.sun.star.beans.PropertyValue", signing)
    uno.invoke(
        doc,
        "storeToURL",
        (
            uno.systemPathToFileUrl(out),
            properties(FilterName="writer_pdf_Export", FilterData=filter_data),
        ),
    )
    doc.close(True)
    # soffice is stopped by the caller: ending it from here (Desktop.terminate) crashed this
    # process now and then as the bridge went away under pyuno (SIGSEGV, measured)
    print("stored", out, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
