"""Identity for the reference Neutron server used by the recorder.

A request that carries X-Roles is trusted as keystonemiddleware would
have set its headers (X-Project-Id, X-User-Id, X-Roles): Neutron's own
NeutronKeystoneContext makes the request context from them, and Neutron's
default policies apply (a "member" is a non-admin of its project). Any
other request goes through Neutron's stock noauth middleware
(NoauthFakeProjectId): without X-Project-Id it is admin of
"fake_project_id"; with one it is an admin context without a project.
"""
from neutron import auth
from oslo_middleware import base
import webob.dec


class TrustedOrNoauth(base.ConfigurableMiddleware):

    def __init__(self, application, conf=None):
        super().__init__(application, conf)
        self._trusted = auth.NeutronKeystoneContext(application, conf)
        self._noauth = auth.NoauthFakeProjectId(application, conf)

    @webob.dec.wsgify
    def __call__(self, req):
        if req.environ.get('HTTP_X_ROLES'):
            return self._trusted
        return self._noauth
