//! `wasi:sockets@0.2.0-rc-2023-10-18` over the 0.2 host's sockets, under
//! the same policy (wasmhost allows no socket address and no name lookup
//! to any component, so binds, connects and lookups are refused as they
//! are for 0.2 components).
//!
//! TCP is 0.2's with old names (`keep-alive`, `unicast-hop-limit`).
//! UDP changed shape: the snapshot connects with `start-connect` /
//! `finish-connect` and sends and receives on the socket itself, where 0.2
//! connects and gets a pair of datagram streams in one `stream` call; so a
//! snapshot socket ([`UdpSocket`]) is a 0.2 socket plus the connect in
//! progress and the streams, opened by `finish-connect` or, unconnected,
//! by the first `send` or `receive`. `ipv6-only`, `no-delay` (gone in 0.2)
//! answer `not-supported`; `resolve-addresses`' family filter and
//! `include-unavailable` (gone in 0.2) are not applied.

use wasmtime::component::Resource;
use wasmtime_wasi::sockets::WasiSocketsCtxView;

use super::latest::sockets as latest;
use super::returned;
use super::snapshot::sockets::{
    instance_network, ip_name_lookup, network, tcp, tcp_create_socket, udp, udp_create_socket,
};
use ip_name_lookup::ResolveAddressStream;
use network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
    Network,
};
use tcp::{ShutdownType, TcpSocket};
use udp::Datagram;

type Pollable = super::latest::io::poll::Pollable;
type InputStream = super::latest::io::streams::InputStream;
type OutputStream = super::latest::io::streams::OutputStream;

type SocketResult<T> = wasmtime::Result<Result<T, ErrorCode>>;

super::same_cases!(latest::network::ErrorCode, ErrorCode:
    Unknown, AccessDenied, NotSupported, InvalidArgument, OutOfMemory, Timeout,
    ConcurrencyConflict, NotInProgress, WouldBlock, InvalidState, NewSocketLimit,
    AddressNotBindable, AddressInUse, RemoteUnreachable, ConnectionRefused, ConnectionReset,
    ConnectionAborted, DatagramTooLarge, NameUnresolvable, TemporaryResolverFailure,
    PermanentResolverFailure,
);
super::same_cases!(latest::network::IpAddressFamily, IpAddressFamily: Ipv4, Ipv6);
super::same_cases!(latest::network::IpAddress, IpAddress: Ipv4(address), Ipv6(address));
super::same_cases!(latest::network::IpSocketAddress, IpSocketAddress: Ipv4(address), Ipv6(address));
super::same_cases!(latest::tcp::ShutdownType, ShutdownType: Receive, Send, Both);

impl From<latest::network::Ipv4SocketAddress> for Ipv4SocketAddress {
    fn from(a: latest::network::Ipv4SocketAddress) -> Self {
        Self {
            port: a.port,
            address: a.address,
        }
    }
}

impl From<Ipv4SocketAddress> for latest::network::Ipv4SocketAddress {
    fn from(a: Ipv4SocketAddress) -> Self {
        Self {
            port: a.port,
            address: a.address,
        }
    }
}

impl From<latest::network::Ipv6SocketAddress> for Ipv6SocketAddress {
    fn from(a: latest::network::Ipv6SocketAddress) -> Self {
        Self {
            port: a.port,
            flow_info: a.flow_info,
            address: a.address,
            scope_id: a.scope_id,
        }
    }
}

impl From<Ipv6SocketAddress> for latest::network::Ipv6SocketAddress {
    fn from(a: Ipv6SocketAddress) -> Self {
        Self {
            port: a.port,
            flow_info: a.flow_info,
            address: a.address,
            scope_id: a.scope_id,
        }
    }
}

/// What a function 0.2 no longer has answers.
fn gone<T>() -> SocketResult<T> {
    Ok(Err(ErrorCode::NotSupported))
}

/// A borrow of a resource the host holds (the guest never sees it).
fn borrow<T: 'static>(owned: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(owned.rep())
}

impl network::Host for WasiSocketsCtxView<'_> {}

impl network::HostNetwork for WasiSocketsCtxView<'_> {
    fn drop(&mut self, network: Resource<Network>) -> wasmtime::Result<()> {
        latest::network::HostNetwork::drop(self, network)
    }
}

impl instance_network::Host for WasiSocketsCtxView<'_> {
    fn instance_network(&mut self) -> wasmtime::Result<Resource<Network>> {
        latest::instance_network::Host::instance_network(self)
    }
}

impl ip_name_lookup::Host for WasiSocketsCtxView<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
        _address_family: Option<IpAddressFamily>,
        _include_unavailable: bool,
    ) -> SocketResult<Resource<ResolveAddressStream>> {
        returned(latest::ip_name_lookup::Host::resolve_addresses(
            self, network, name,
        ))
    }
}

impl ip_name_lookup::HostResolveAddressStream for WasiSocketsCtxView<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> SocketResult<Option<IpAddress>> {
        let next =
            latest::ip_name_lookup::HostResolveAddressStream::resolve_next_address(self, stream);
        returned(next.map(|address| address.map(IpAddress::from)))
    }

    fn subscribe(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<Pollable>> {
        latest::ip_name_lookup::HostResolveAddressStream::subscribe(self, stream)
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        latest::ip_name_lookup::HostResolveAddressStream::drop(self, stream)
    }
}

impl tcp_create_socket::Host for WasiSocketsCtxView<'_> {
    fn create_tcp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<TcpSocket>> {
        returned(latest::tcp_create_socket::Host::create_tcp_socket(
            self,
            family.into(),
        ))
    }
}

impl tcp::Host for WasiSocketsCtxView<'_> {}

impl tcp::HostTcpSocket for WasiSocketsCtxView<'_> {
    async fn start_bind(
        &mut self,
        socket: Resource<TcpSocket>,
        network: Resource<Network>,
        local: IpSocketAddress,
    ) -> SocketResult<()> {
        returned(latest::tcp::HostTcpSocket::start_bind(self, socket, network, local.into()).await)
    }

    fn finish_bind(&mut self, socket: Resource<TcpSocket>) -> SocketResult<()> {
        returned(latest::tcp::HostTcpSocket::finish_bind(self, socket))
    }

    fn start_connect(
        &mut self,
        socket: Resource<TcpSocket>,
        network: Resource<Network>,
        remote: IpSocketAddress,
    ) -> SocketResult<()> {
        returned(latest::tcp::HostTcpSocket::start_connect(
            self,
            socket,
            network,
            remote.into(),
        ))
    }

    fn finish_connect(
        &mut self,
        socket: Resource<TcpSocket>,
    ) -> SocketResult<(Resource<InputStream>, Resource<OutputStream>)> {
        returned(latest::tcp::HostTcpSocket::finish_connect(self, socket))
    }

    async fn start_listen(&mut self, socket: Resource<TcpSocket>) -> SocketResult<()> {
        returned(latest::tcp::HostTcpSocket::start_listen(self, socket).await)
    }

    fn finish_listen(&mut self, socket: Resource<TcpSocket>) -> SocketResult<()> {
        returned(latest::tcp::HostTcpSocket::finish_listen(self, socket))
    }

    fn accept(
        &mut self,
        socket: Resource<TcpSocket>,
    ) -> SocketResult<(
        Resource<TcpSocket>,
        Resource<InputStream>,
        Resource<OutputStream>,
    )> {
        returned(latest::tcp::HostTcpSocket::accept(self, socket))
    }

    fn local_address(&mut self, socket: Resource<TcpSocket>) -> SocketResult<IpSocketAddress> {
        returned(latest::tcp::HostTcpSocket::local_address(self, socket))
    }

    fn remote_address(&mut self, socket: Resource<TcpSocket>) -> SocketResult<IpSocketAddress> {
        returned(latest::tcp::HostTcpSocket::remote_address(self, socket))
    }

    fn address_family(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<IpAddressFamily> {
        latest::tcp::HostTcpSocket::address_family(self, socket).map(Into::into)
    }

    fn ipv6_only(&mut self, _socket: Resource<TcpSocket>) -> SocketResult<bool> {
        gone()
    }

    fn set_ipv6_only(&mut self, _socket: Resource<TcpSocket>, _value: bool) -> SocketResult<()> {
        gone()
    }

    fn set_listen_backlog_size(
        &mut self,
        socket: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        returned(latest::tcp::HostTcpSocket::set_listen_backlog_size(
            self, socket, value,
        ))
    }

    fn keep_alive(&mut self, socket: Resource<TcpSocket>) -> SocketResult<bool> {
        returned(latest::tcp::HostTcpSocket::keep_alive_enabled(self, socket))
    }

    fn set_keep_alive(&mut self, socket: Resource<TcpSocket>, value: bool) -> SocketResult<()> {
        returned(latest::tcp::HostTcpSocket::set_keep_alive_enabled(
            self, socket, value,
        ))
    }

    fn no_delay(&mut self, _socket: Resource<TcpSocket>) -> SocketResult<bool> {
        gone()
    }

    fn set_no_delay(&mut self, _socket: Resource<TcpSocket>, _value: bool) -> SocketResult<()> {
        gone()
    }

    fn unicast_hop_limit(&mut self, socket: Resource<TcpSocket>) -> SocketResult<u8> {
        returned(latest::tcp::HostTcpSocket::hop_limit(self, socket))
    }

    fn set_unicast_hop_limit(
        &mut self,
        socket: Resource<TcpSocket>,
        value: u8,
    ) -> SocketResult<()> {
        returned(latest::tcp::HostTcpSocket::set_hop_limit(
            self, socket, value,
        ))
    }

    fn receive_buffer_size(&mut self, socket: Resource<TcpSocket>) -> SocketResult<u64> {
        returned(latest::tcp::HostTcpSocket::receive_buffer_size(
            self, socket,
        ))
    }

    fn set_receive_buffer_size(
        &mut self,
        socket: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        returned(latest::tcp::HostTcpSocket::set_receive_buffer_size(
            self, socket, value,
        ))
    }

    fn send_buffer_size(&mut self, socket: Resource<TcpSocket>) -> SocketResult<u64> {
        returned(latest::tcp::HostTcpSocket::send_buffer_size(self, socket))
    }

    fn set_send_buffer_size(
        &mut self,
        socket: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        returned(latest::tcp::HostTcpSocket::set_send_buffer_size(
            self, socket, value,
        ))
    }

    fn subscribe(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<Resource<Pollable>> {
        latest::tcp::HostTcpSocket::subscribe(self, socket)
    }

    fn shutdown(&mut self, socket: Resource<TcpSocket>, how: ShutdownType) -> SocketResult<()> {
        returned(latest::tcp::HostTcpSocket::shutdown(
            self,
            socket,
            how.into(),
        ))
    }

    fn drop(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<()> {
        latest::tcp::HostTcpSocket::drop(self, socket)
    }
}

/// A snapshot UDP socket: the 0.2 socket, the address `start-connect` was
/// given until `finish-connect`, and the 0.2 datagram streams once opened.
/// The 0.2 resources are in the same table, held by the host only.
pub struct UdpSocket {
    socket: Resource<latest::udp::UdpSocket>,
    connecting: Option<IpSocketAddress>,
    streams: Option<Streams>,
}

/// A 0.2 socket's datagram streams (children of the socket in the table).
struct Streams {
    incoming: Resource<latest::udp::IncomingDatagramStream>,
    outgoing: Resource<latest::udp::OutgoingDatagramStream>,
}

impl UdpSocket {
    /// The 0.2 socket of snapshot socket `this`.
    fn inner(
        view: &WasiSocketsCtxView<'_>,
        this: &Resource<UdpSocket>,
    ) -> wasmtime::Result<Resource<latest::udp::UdpSocket>> {
        Ok(borrow(&view.table.get(this)?.socket))
    }

    /// Opens the 0.2 streams of `this`, connected to `remote` (or not),
    /// after closing any open ones: 0.2's `stream` refuses while they live.
    async fn open_streams(
        view: &mut WasiSocketsCtxView<'_>,
        this: &Resource<UdpSocket>,
        remote: Option<IpSocketAddress>,
    ) -> SocketResult<()> {
        if let Some(streams) = view.table.get_mut(this)?.streams.take() {
            streams.close(view).await?;
        }
        let socket = UdpSocket::inner(view, this)?;
        let opened = latest::udp::HostUdpSocket::stream(view, socket, remote.map(Into::into)).await;
        match returned::<_, _, _, ErrorCode>(opened)? {
            Ok((incoming, outgoing)) => {
                view.table.get_mut(this)?.streams = Some(Streams { incoming, outgoing });
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// The streams of `this`, opened unconnected if `finish-connect` has
    /// not opened them: how the snapshot sends and receives on a socket
    /// that was only bound.
    async fn streams(
        view: &mut WasiSocketsCtxView<'_>,
        this: &Resource<UdpSocket>,
    ) -> SocketResult<(
        Resource<latest::udp::IncomingDatagramStream>,
        Resource<latest::udp::OutgoingDatagramStream>,
    )> {
        if view.table.get(this)?.streams.is_none() {
            if let Err(e) = UdpSocket::open_streams(view, this, None).await? {
                return Ok(Err(e));
            }
        }
        match &view.table.get(this)?.streams {
            Some(streams) => Ok(Ok((borrow(&streams.incoming), borrow(&streams.outgoing)))),
            None => Ok(Err(ErrorCode::InvalidState)),
        }
    }
}

impl Streams {
    async fn close(self, view: &mut WasiSocketsCtxView<'_>) -> wasmtime::Result<()> {
        latest::udp::HostIncomingDatagramStream::drop(view, self.incoming)?;
        latest::udp::HostOutgoingDatagramStream::drop(view, self.outgoing).await
    }
}

impl udp_create_socket::Host for WasiSocketsCtxView<'_> {
    async fn create_udp_socket(
        &mut self,
        family: IpAddressFamily,
    ) -> SocketResult<Resource<UdpSocket>> {
        let created = latest::udp_create_socket::Host::create_udp_socket(self, family.into()).await;
        match returned::<_, _, _, ErrorCode>(created)? {
            Ok(socket) => Ok(Ok(self.table.push(UdpSocket {
                socket,
                connecting: None,
                streams: None,
            })?)),
            Err(e) => Ok(Err(e)),
        }
    }
}

impl udp::Host for WasiSocketsCtxView<'_> {}

impl udp::HostUdpSocket for WasiSocketsCtxView<'_> {
    async fn start_bind(
        &mut self,
        this: Resource<UdpSocket>,
        network: Resource<Network>,
        local: IpSocketAddress,
    ) -> SocketResult<()> {
        let socket = UdpSocket::inner(self, &this)?;
        returned(latest::udp::HostUdpSocket::start_bind(self, socket, network, local.into()).await)
    }

    fn finish_bind(&mut self, this: Resource<UdpSocket>) -> SocketResult<()> {
        let socket = UdpSocket::inner(self, &this)?;
        returned(latest::udp::HostUdpSocket::finish_bind(self, socket))
    }

    fn start_connect(
        &mut self,
        this: Resource<UdpSocket>,
        network: Resource<Network>,
        remote: IpSocketAddress,
    ) -> SocketResult<()> {
        // The network is the capability to connect: check it is one.
        self.table.get(&network)?;
        let socket = self.table.get_mut(&this)?;
        if socket.connecting.is_some() {
            return Ok(Err(ErrorCode::ConcurrencyConflict));
        }
        socket.connecting = Some(remote);
        Ok(Ok(()))
    }

    async fn finish_connect(&mut self, this: Resource<UdpSocket>) -> SocketResult<()> {
        let Some(remote) = self.table.get_mut(&this)?.connecting.take() else {
            return Ok(Err(ErrorCode::NotInProgress));
        };
        UdpSocket::open_streams(self, &this, Some(remote)).await
    }

    async fn receive(
        &mut self,
        this: Resource<UdpSocket>,
        max_results: u64,
    ) -> SocketResult<Vec<Datagram>> {
        let (incoming, _) = match UdpSocket::streams(self, &this).await? {
            Ok(streams) => streams,
            Err(e) => return Ok(Err(e)),
        };
        let received =
            latest::udp::HostIncomingDatagramStream::receive(self, incoming, max_results);
        returned(received.map(|datagrams| {
            datagrams
                .into_iter()
                .map(|d| Datagram {
                    data: d.data,
                    remote_address: d.remote_address.into(),
                })
                .collect::<Vec<_>>()
        }))
    }

    async fn send(
        &mut self,
        this: Resource<UdpSocket>,
        mut datagrams: Vec<Datagram>,
    ) -> SocketResult<u64> {
        let (_, outgoing) = match UdpSocket::streams(self, &this).await? {
            Ok(streams) => streams,
            Err(e) => return Ok(Err(e)),
        };
        // 0.2 sends only what `check-send` permitted; the snapshot sends
        // what it can and says how many.
        let permitted =
            latest::udp::HostOutgoingDatagramStream::check_send(self, borrow(&outgoing));
        match returned::<_, u64, _, ErrorCode>(permitted)? {
            Ok(permitted) => datagrams.truncate(usize::try_from(permitted).unwrap_or(usize::MAX)),
            Err(e) => return Ok(Err(e)),
        }
        let datagrams = datagrams
            .into_iter()
            .map(|d| latest::udp::OutgoingDatagram {
                data: d.data,
                remote_address: Some(d.remote_address.into()),
            })
            .collect();
        returned(latest::udp::HostOutgoingDatagramStream::send(
            self, outgoing, datagrams,
        ))
    }

    fn local_address(&mut self, this: Resource<UdpSocket>) -> SocketResult<IpSocketAddress> {
        let socket = UdpSocket::inner(self, &this)?;
        returned(latest::udp::HostUdpSocket::local_address(self, socket))
    }

    fn remote_address(&mut self, this: Resource<UdpSocket>) -> SocketResult<IpSocketAddress> {
        let socket = UdpSocket::inner(self, &this)?;
        returned(latest::udp::HostUdpSocket::remote_address(self, socket))
    }

    fn address_family(&mut self, this: Resource<UdpSocket>) -> wasmtime::Result<IpAddressFamily> {
        let socket = UdpSocket::inner(self, &this)?;
        latest::udp::HostUdpSocket::address_family(self, socket).map(Into::into)
    }

    fn ipv6_only(&mut self, _this: Resource<UdpSocket>) -> SocketResult<bool> {
        gone()
    }

    fn set_ipv6_only(&mut self, _this: Resource<UdpSocket>, _value: bool) -> SocketResult<()> {
        gone()
    }

    fn unicast_hop_limit(&mut self, this: Resource<UdpSocket>) -> SocketResult<u8> {
        let socket = UdpSocket::inner(self, &this)?;
        returned(latest::udp::HostUdpSocket::unicast_hop_limit(self, socket))
    }

    fn set_unicast_hop_limit(&mut self, this: Resource<UdpSocket>, value: u8) -> SocketResult<()> {
        let socket = UdpSocket::inner(self, &this)?;
        returned(latest::udp::HostUdpSocket::set_unicast_hop_limit(
            self, socket, value,
        ))
    }

    fn receive_buffer_size(&mut self, this: Resource<UdpSocket>) -> SocketResult<u64> {
        let socket = UdpSocket::inner(self, &this)?;
        returned(latest::udp::HostUdpSocket::receive_buffer_size(
            self, socket,
        ))
    }

    fn set_receive_buffer_size(
        &mut self,
        this: Resource<UdpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        let socket = UdpSocket::inner(self, &this)?;
        returned(latest::udp::HostUdpSocket::set_receive_buffer_size(
            self, socket, value,
        ))
    }

    fn send_buffer_size(&mut self, this: Resource<UdpSocket>) -> SocketResult<u64> {
        let socket = UdpSocket::inner(self, &this)?;
        returned(latest::udp::HostUdpSocket::send_buffer_size(self, socket))
    }

    fn set_send_buffer_size(&mut self, this: Resource<UdpSocket>, value: u64) -> SocketResult<()> {
        let socket = UdpSocket::inner(self, &this)?;
        returned(latest::udp::HostUdpSocket::set_send_buffer_size(
            self, socket, value,
        ))
    }

    fn subscribe(&mut self, this: Resource<UdpSocket>) -> wasmtime::Result<Resource<Pollable>> {
        let socket = UdpSocket::inner(self, &this)?;
        latest::udp::HostUdpSocket::subscribe(self, socket)
    }

    async fn drop(&mut self, this: Resource<UdpSocket>) -> wasmtime::Result<()> {
        let socket = self.table.delete(this)?;
        if let Some(streams) = socket.streams {
            streams.close(self).await?;
        }
        latest::udp::HostUdpSocket::drop(self, socket.socket)
    }
}
